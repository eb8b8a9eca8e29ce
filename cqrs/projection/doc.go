// Package projection turns the events of many aggregates into a read model
// kept in SQL tables (PostgreSQL or MySQL/MariaDB), which can be thrown
// away and rebuilt from the events at any time.
//
// A projection ([Definition]) is an event handler per event type ([On])
// and the schema of its tables. Its [Projector] follows the event store's
// global order (eventstore.Store.ReadAll, which never skips an event that
// commits late) and applies the events in batches: each batch's writes and
// the projection's checkpoint, the position of its last event, commit in
// one transaction of the read model's database, so a crash never applies
// an event twice nor skips one. On PostgreSQL the event store notifies
// every commit and the projector wakes within milliseconds; elsewhere it
// polls (10ms by default).
//
//	p, err := projection.New(ctx, db, store, projection.Definition{
//		Name:   "balances",
//		Tables: []string{"balances"},
//		Schema: func(g projection.Generation) []string {
//			return []string{"CREATE TABLE " + g.Table("balances") + " (account TEXT PRIMARY KEY, balance BIGINT NOT NULL)"}
//		},
//		Handlers: []projection.Handler{
//			projection.On(func(ctx context.Context, tx *sql.Tx, g projection.Generation, d Deposited, e eventstore.Event) error {
//				_, err := tx.ExecContext(ctx, "INSERT INTO "+g.Table("balances")+" ...", e.StreamID, d.Amount)
//				return err
//			}),
//		},
//	}, projection.DefaultConfig(sqlstore.Postgres))
//	err = p.RunIn(app) // follows the store while the App runs; metrics on /metrics
//
// Readers query the table names of the definition ("balances"): views of
// the live [Generation]'s tables ("balances_g1"). [Projector.Rebuild]
// creates the next generation's tables and fills them from the first
// event while the live one keeps serving and following; when it has caught
// up, one transaction applies the last events and makes it live, and the
// old tables are dropped. A rebuild killed midway goes on from its
// checkpoint when Rebuild runs again.
//
// [Projector.Consume] feeds the same definition from the transport
// instead (an App handler; each message's writes and its dedup mark commit
// together): for a service that cannot read the owner's event store. It
// has no global position, so no rebuild.
//
// The events come through the store's upcasters, live and rebuilding
// alike, so a projection only ever handles the current version of each
// event.
//
// # Metrics
//
// [Projector.RunIn] registers, labelled projection="<name>":
// millrace_projection_lag_seconds (how long ago the last applied event was
// recorded, while events wait; 0 when caught up),
// millrace_projection_applied_total, and the histogram
// millrace_projection_apply_lag_seconds (from an event's record to the
// commit that applied it).
package projection
