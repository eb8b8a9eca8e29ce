// Command saga lists, shows and resumes the saga instances of a millrace
// service whose state is kept in PostgreSQL or MySQL (package saga/sql).
//
//	saga -dsn postgres://... list [-saga order] [-status needs_attention] [-limit 50]
//	saga -dsn postgres://... show -saga order o-17
//	saga -dsn postgres://... -config service.yaml resume -saga order o-17
//
// list and show read the store; show prints the instance's steps and full
// history (which step, what happened, which message, when). resume
// publishes a resume request on the saga's control topic (saga.<name>, or
// -topic) through the transport the service's config names: the running
// service sends the failed compensation again (saga.Manager.Resume). The
// DSN's scheme or form picks the dialect (postgres:// or a MySQL DSN such
// as root@tcp(127.0.0.1:3306)/db), or -dialect does.
package main
