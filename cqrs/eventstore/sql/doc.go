// Package sql is an event store in PostgreSQL or MySQL/MariaDB: a
// [eventstore.Store] that also appends inside the caller's transaction
// ([eventstore.TxAppender], for the transactional outbox) and keeps
// snapshots beside the streams ([eventstore.SnapshotStore]). It passes
// package storetest's contract suites and its property test of the global
// order on both databases.
//
// Its name is database/sql's too; import it under another name:
//
//	import sqlstore "github.com/millrace/millrace/cqrs/eventstore/sql"
//
// # Tables
//
// [Store.CreateSchema] creates, with the [TablePrefix] (default
// "millrace_es_") in front of each name:
//
//	events     one row per event: stream_id, version, event_id, type,
//	           content_type, payload (bytes, as the codec made them),
//	           metadata (a JSON object of strings), recorded_at (the
//	           database's clock, UTC), and its place in the global order:
//	           (tx, seq) on PostgreSQL, seq on MySQL; unique (stream_id, version)
//	streams    one row per stream: its current version (and on PostgreSQL
//	           the tx of its last append)
//	snapshots  one row per stream and state_version: version, type,
//	           content_type, payload, taken_at
//	sequence   MySQL only: one row holding the last seq handed out
//
// On PostgreSQL it also creates the function <prefix>notify and the
// statement trigger <prefix>events_notify on the events table: every
// transaction that appends notifies the channel "<prefix>events"
// ([Store.NotifyChannel]) when it commits, so that followers such as
// projections LISTEN and wake within milliseconds instead of polling.
//
// Rows are never updated or deleted, except the streams', the snapshots'
// and the sequence's own.
//
// # Appends and conflicts
//
// An append writes the stream's row first: inserted for [eventstore.NoStream],
// updated where its version is the expected one, upserted for
// [eventstore.Any]. That row's lock orders the appends to one stream, and
// when it is not written (the version was not the expected one) no event is
// inserted, and the append returns a *[eventstore.ConflictError]. On
// PostgreSQL the whole append is one statement (one round trip, its own
// transaction), so a batch is stored whole or not at all; on MySQL it is one
// transaction.
//
// Concurrent [Store.Append] calls are merged (group commit): while one
// append runs, the calls that arrive gather and are then stored together, in
// one statement on PostgreSQL, one transaction on MySQL, each call with its
// own expected version and outcome. An append costs mostly its commit and
// round trips, whatever its size, so under load the appends per commit grow
// instead of the commits. A merged append that the database refuses (say, a
// trigger rejects one of its events) stored nothing, and each of its calls
// is then run on its own, so that one call's failure is that call's only.
//
// On PostgreSQL every append takes a transaction-scoped advisory lock per
// stream before its row, merged appends in the order of the stream ids (byte
// order). A transaction that appends to several streams with
// [Store.AppendTx] should do so in that order too: then it never deadlocks
// with merged appends, nor with other such transactions.
//
// # The global order
//
// PostgreSQL numbers rows with a sequence as they are inserted, not as they
// commit: a transaction holding number 7 may commit after the one holding 8,
// and a reader that has read 8 would skip 7 for good. So, as watermill-sql's
// PostgreSQL offsets do, each row also carries a transaction id, tx, and
// ReadAll reads in (tx, seq) order only the rows whose tx is below
// pg_snapshot_xmin(pg_current_snapshot()), the oldest transaction still
// running: every transaction below it has ended, and a running transaction
// writes rows at or above its own id, so no row can later appear below a
// position ReadAll returned. A row's tx is the greatest of its transaction's
// id (pg_current_xact_id()) and the tx of the stream's previous append: an
// append that waited for the stream's lock may have an older id than the one
// it waited for, and taking the greatest keeps each stream's events in
// version order. An append whose transaction began after another committed
// has a greater id than any tx the other wrote, so it comes after it. The
// cost: while a transaction that has written anything is open anywhere on
// the PostgreSQL server, readers do not pass it; keep transactions short
// (AppendTx included), or give the event store a server of its own.
//
// MySQL has no such horizon, so appends are serialised instead: each takes
// the sequence row's lock first and holds it until it commits, numbering its
// events after the last number in seq; numbers are handed out in commit
// order, without gaps (a rolled back append never wrote the sequence). One
// append runs at a time per store, the others wait for its commit. A reader
// needs more than that, though: InnoDB copies the set of running
// transactions into a read view without stopping commits, so a read can see
// an append without an earlier one that had committed too (a torn view).
// ReadAll therefore returns events only as far as their numbers follow on
// without a gap from where the reader is; at a gap right there it waits for
// the sequence row's lock (a shared lock, held by the running append if
// there is one), after which every append up to the sequence's value has
// ended, and reads again up to that value. ReadStream does the same with the
// stream's row when a version is missing. The sessions must not run in READ
// UNCOMMITTED.
//
// # Timeouts
//
// Every call is bounded by the store's [CallTimeout] (default 10s): its
// statements, and the connection the first of them may have to open. A
// server that accepts connections and never answers fails the call with an
// error that names the CallTimeout and wraps context.DeadlineExceeded.
//
// # Example
//
//	db, err := sql.Open("pgx", "postgres://app@db:5432/orders?sslmode=disable")
//	if err != nil {
//		return err
//	}
//	store, err := sqlstore.New(db, sqlstore.Postgres, sqlstore.UpcastWith(upcasters))
//	if err != nil {
//		return err
//	}
//	if err := store.CreateSchema(ctx); err != nil {
//		return err
//	}
//	placed, err := eventstore.NewEvent(framework.JSON{}, OrderPlaced{ID: "o-1"}, envelope)
//	if err != nil {
//		return err
//	}
//	_, err = store.Append(ctx, "order-o-1", eventstore.NoStream, []eventstore.Event{placed})
//	var conflict *eventstore.ConflictError
//	if errors.As(err, &conflict) {
//		// another command got there first: load the stream again and retry
//	}
package sql
