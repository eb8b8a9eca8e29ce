// Package sql is a [middleware.DedupStore] kept in a PostgreSQL or
// MySQL/MariaDB table, for services that already own a database and want
// their dedup marks beside their data.
//
// One row per key: dedup_key, owner, state ("inflight" or "done") and
// expires_at, all compared on the database's clock. Claim takes a key with a
// single atomic upsert (PostgreSQL: INSERT ... ON CONFLICT DO UPDATE ...
// WHERE expired; MySQL: INSERT ... ON DUPLICATE KEY UPDATE with IF()), so
// concurrent deliveries in any number of processes get exactly one winner.
// Complete and Release only touch a row their owner still holds. Database
// errors wrap middleware.ErrStoreUnavailable.
//
// Expired rows act as absent but stay in the table until Purge deletes
// them; call it periodically. CompleteTx marks a key done inside the
// handler's own transaction, so its writes and the mark commit together.
//
// With go-sql-driver/mysql, add interpolateParams=true to the DSN: without
// it every statement with arguments costs a prepare, an execute and a close.
//
// Its name is database/sql's too; import one of them under another name:
//
//	import sqlstore "github.com/millrace/millrace/middleware/dedupstore/sql"
//
//	db, err := sql.Open("pgx", "postgres://app@db:5432/app?sslmode=disable")
//	if err != nil {
//		return err
//	}
//	store, err := sqlstore.New(db, sqlstore.Postgres, "millrace_dedup")
//	if err != nil {
//		return err
//	}
//	if err := store.CreateSchema(ctx); err != nil {
//		return err
//	}
//	switch res, err := store.Claim(ctx, key, owner, 30*time.Second); {
//	case err != nil:
//		return err // errors.Is(err, middleware.ErrStoreUnavailable)
//	case res == middleware.Claimed:
//		// run the handler, then store.Complete(ctx, key, owner, 24*time.Hour)
//	}
package sql
