// Package eventstore is the storage layer of event sourcing: streams of
// events appended with an expected version and read back by stream or in
// one global order, snapshots kept beside the streams, and upcasters that
// turn old event versions into current ones as they are read. It needs no
// App: aggregates, projections and the outbox relay are built on it.
//
// A [Store] appends the events of one command to one stream atomically,
// if the stream is at the expected version ([Any], [NoStream] or a
// version); a concurrent writer gets a *[ConflictError] and nothing of its
// batch is stored. [Store.ReadStream] reads a stream from a version, up to
// a version or a time (its state as of then); [Store.ReadAll] reads every
// stream in one global order of [Position]s, which a follower can never
// pass an event in: it sees every committed event exactly once. Every
// event carries its envelope (type name, correlation and causation ids,
// publisher, ...) in Metadata, its stream, version and position, and its
// payload as the codec encoded it ([NewEvent], [Decode]).
//
// [Memory] is the store for tests; package sql keeps events in PostgreSQL
// or MySQL/MariaDB and appends inside the caller's transaction
// ([TxAppender]). Package storetest is the contract suite every store
// passes, and the property test of the global order.
//
//	store := eventstore.NewMemory(eventstore.UpcastWith(upcasters))
//	placed, err := eventstore.NewEvent(framework.JSON{}, OrderPlaced{ID: "o-1"}, envelope)
//	if err != nil {
//		return err
//	}
//	_, err = store.Append(ctx, "order-o-1", eventstore.NoStream, []eventstore.Event{placed})
//	if errors.Is(err, eventstore.ErrConflict) {
//		// another command created the order first
//	}
//	events, err := store.ReadStream(ctx, "order-o-1", 1, eventstore.ReadOptions{})
//
// # Upcasting
//
// Event types carry a version in their name ("OrderPlaced.v2", see
// [framework.Versioned]). When a type changes shape, register an upcaster from
// the old version to the new one ([Upcasters.Register], or [Upcast] for Go
// types through a codec); chains (v1 → v2 → v3) apply in turn. Stored events
// are never rewritten: the store given the [Upcasters] ([UpcastWith]) upcasts
// on every read path, so aggregate loads, projections (live or rebuilding)
// and the outbox relay all see the current version.
//
// # Snapshots
//
// A [Snapshot] is a stream's state as of a version, saved every N events
// ([SnapshotPolicy], N per aggregate type) in a [SnapshotStore] beside the
// streams. It is kept per state version: code that changed the state's
// shape bumps StateVersion and no longer finds the old snapshots, so it
// reads the stream from its first event instead of decoding a snapshot
// wrongly.
package eventstore
