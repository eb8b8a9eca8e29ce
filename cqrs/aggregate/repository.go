package aggregate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/cqrs/eventstore"
	"github.com/millrace/millrace/framework"
	"github.com/millrace/millrace/middleware"
)

// DefaultAttempts is how many times [Repository.Handle] runs a command
// against a freshly loaded aggregate when its save meets a concurrent
// writer, unless [Attempts] says otherwise.
const DefaultAttempts = 5

// Repository loads and saves the aggregates of one type in an event store:
// an aggregate's state is its events, replayed on load (from a snapshot
// when there is one); a save appends the recorded events with the version
// the aggregate was loaded at, so that of two concurrent commands on one
// aggregate one wins and the other gets an [eventstore.ConflictError]. It
// is safe for concurrent use.
type Repository[A Aggregate] struct {
	def       compiled[A]
	store     eventstore.Store
	snapshots eventstore.SnapshotStore
	policy    eventstore.SnapshotPolicy
	attempts  int
	logger    *slog.Logger
	service   string
}

// Option configures a [Repository].
type Option func(*options)

type options struct {
	snapshots eventstore.SnapshotStore
	policy    eventstore.SnapshotPolicy
	attempts  int
	logger    *slog.Logger
	service   string
}

// Snapshots keeps snapshots of the aggregates in s as policy says (every N
// events, N per aggregate type: [eventstore.SnapshotPolicy]): a save that
// reaches or crosses a multiple of N stores the state, and a load starts
// from the latest snapshot of the definition's StateVersion and reads only
// the events after it, so its cost is bounded by N however long the stream
// grows. Without this option nothing is snapshotted and every load reads
// the whole stream.
func Snapshots(s eventstore.SnapshotStore, policy eventstore.SnapshotPolicy) Option {
	return func(o *options) { o.snapshots, o.policy = s, policy }
}

// Attempts bounds how many times [Repository.Handle] loads, decides and
// saves when the save meets a concurrent writer; default [DefaultAttempts].
func Attempts(n int) Option {
	return func(o *options) { o.attempts = n }
}

// Logger is where the repository reports snapshots it failed to save (the
// events were saved; the next due save snapshots again). Default: nowhere.
func Logger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// PublishedBy stamps the events the repository saves with service as their
// published_by ([millrace.MetadataPublishedBy]); [HandleCommand] sets the
// App's service name.
func PublishedBy(service string) Option {
	return func(o *options) { o.service = service }
}

// NewRepository returns the repository of def's aggregates in store. A
// definition with a missing or wrong field, or a snapshot policy with a
// negative N, is an error naming it.
func NewRepository[A Aggregate](store eventstore.Store, def Definition[A], opts ...Option) (*Repository[A], error) {
	c, err := compile(def)
	if err != nil {
		return nil, err
	}
	if store == nil {
		return nil, fmt.Errorf("aggregate: repository of %q: nil store", def.Type)
	}
	o := options{attempts: DefaultAttempts}
	for _, opt := range opts {
		opt(&o)
	}
	if o.attempts < 1 {
		return nil, fmt.Errorf("aggregate: repository of %q: Attempts(%d): want at least 1", def.Type, o.attempts)
	}
	if err := o.policy.Validate(); err != nil {
		return nil, fmt.Errorf("aggregate: repository of %q: snapshot policy: %w", def.Type, err)
	}
	if o.snapshots == nil && o.policy.EveryFor(def.Type) > 0 {
		return nil, fmt.Errorf("aggregate: repository of %q: a snapshot policy without a snapshot store", def.Type)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	return &Repository[A]{
		def: c, store: store, snapshots: o.snapshots, policy: o.policy,
		attempts: o.attempts, logger: o.logger, service: o.service,
	}, nil
}

// Definition returns the repository's aggregate definition (with its
// defaults filled in).
func (r *Repository[A]) Definition() Definition[A] { return r.def.Definition }

// Load returns the aggregate with id as its stored events make it: the
// latest snapshot, if the repository keeps snapshots and has one of the
// definition's StateVersion, then every event after it. An aggregate
// without events is returned empty, at version 0 (a command may create
// it).
func (r *Repository[A]) Load(ctx context.Context, id string) (A, error) {
	return r.load(ctx, id, eventstore.ReadOptions{})
}

// LoadVersion returns the aggregate with id as it was at version: the
// state its first version events made (fewer, if the stream is shorter).
func (r *Repository[A]) LoadVersion(ctx context.Context, id string, version int64) (A, error) {
	if version < 1 {
		var zero A
		return zero, fmt.Errorf("%w: aggregate: load %s at version %d: want a version of at least 1", eventstore.ErrInvalid, r.def.Stream(id), version)
	}
	return r.load(ctx, id, eventstore.ReadOptions{To: version})
}

// LoadAsOf returns the aggregate with id as it was at time t: the state
// its events recorded at or before t made, on the store's clock.
func (r *Repository[A]) LoadAsOf(ctx context.Context, id string, t time.Time) (A, error) {
	if t.IsZero() {
		var zero A
		return zero, fmt.Errorf("%w: aggregate: load %s as of the zero time", eventstore.ErrInvalid, r.def.Stream(id))
	}
	return r.load(ctx, id, eventstore.ReadOptions{Until: t})
}

func (r *Repository[A]) load(ctx context.Context, id string, opts eventstore.ReadOptions) (A, error) {
	stream := r.def.Stream(id)
	a := r.def.New()
	var version int64
	if sn, ok, err := r.snapshot(ctx, stream, opts); err != nil {
		var zero A
		return zero, err
	} else if ok {
		if err := r.def.Codec.Unmarshal(sn.Payload, a); err != nil {
			// A snapshot is a cache: decode nothing of it, read the stream.
			r.logger.Warn("aggregate: snapshot does not decode; reading the stream from its first event",
				slog.String("stream", stream), slog.Int64("version", sn.Version), slog.Any("error", err))
			a = r.def.New()
		} else {
			version = sn.Version
		}
	}
	reset(a, id, version)
	events, err := r.store.ReadStream(ctx, stream, version+1, opts)
	if err != nil {
		var zero A
		return zero, fmt.Errorf("aggregate: load %s: %w", stream, err)
	}
	for _, e := range events {
		if e.Version != version+1 {
			var zero A
			return zero, fmt.Errorf("aggregate: load %s: read version %d after version %d", stream, e.Version, version)
		}
		v, err := r.decode(e)
		if err != nil {
			var zero A
			return zero, err
		}
		a.Apply(v)
		version = e.Version
	}
	reset(a, id, version)
	return a, nil
}

// snapshot returns the snapshot a load bounded by opts may start from.
func (r *Repository[A]) snapshot(ctx context.Context, stream string, opts eventstore.ReadOptions) (eventstore.Snapshot, bool, error) {
	if r.snapshots == nil {
		return eventstore.Snapshot{}, false, nil
	}
	sn, ok, err := r.snapshots.LoadSnapshot(ctx, stream, r.def.StateVersion)
	if err != nil {
		return eventstore.Snapshot{}, false, fmt.Errorf("aggregate: load %s: %w", stream, err)
	}
	switch {
	case !ok, sn.Type != r.def.Type:
		return eventstore.Snapshot{}, false, nil
	case opts.To > 0 && sn.Version > opts.To:
		return eventstore.Snapshot{}, false, nil
	case !opts.Until.IsZero() && (sn.TakenAt.IsZero() || sn.TakenAt.After(opts.Until)):
		// Taken after the time asked for: it may hold events recorded
		// after it. One taken before it holds only events recorded before.
		return eventstore.Snapshot{}, false, nil
	}
	return sn, true, nil
}

// decode returns e as the Go value of its type.
func (r *Repository[A]) decode(e eventstore.Event) (any, error) {
	et, ok := r.def.byName[e.Type]
	if !ok {
		return nil, fmt.Errorf("aggregate: load %s: event %s at version %d is a %s, not one of the Events of %q (a type without its upcaster?)", e.StreamID, e.ID, e.Version, e.Type, r.def.Type)
	}
	return et.decode(r.def.Codec, e)
}

// Save appends a's uncommitted events to its stream, expecting the stream
// at the version a was loaded at, and takes a snapshot when the policy says
// one is due. Each event is stamped with its envelope: the id of a new
// message, the correlation and causation ids of the message being handled
// in ctx (see [framework.Message]), published_by, and entity_id, the
// aggregate's id. A save with nothing recorded does nothing.
//
// If another writer appended to the stream since a was loaded, nothing is
// stored and the error is an *[eventstore.ConflictError]: load again and
// decide again ([Repository.Handle] does). After a successful save a is at
// its new version with nothing uncommitted; after an error it is as it was.
func (r *Repository[A]) Save(ctx context.Context, a A) error {
	root := a.root()
	if len(root.changes) == 0 {
		return nil
	}
	stream := r.def.Stream(root.id)
	if root.id == "" {
		return fmt.Errorf("%w: aggregate: save a %s without an id (make aggregates with Repository.Load)", eventstore.ErrInvalid, r.def.Type)
	}
	events, err := r.encode(ctx, root)
	if err != nil {
		return err
	}
	from := root.version
	expected := from
	if expected == 0 {
		expected = eventstore.NoStream
	}
	to, err := r.store.Append(ctx, stream, expected, events)
	if err != nil {
		var ce *eventstore.ConflictError
		if errors.As(err, &ce) {
			return err
		}
		return fmt.Errorf("aggregate: save %s: %w", stream, err)
	}
	root.version, root.changes = to, root.changes[:0]
	if r.snapshots != nil && r.policy.Due(r.def.Type, from, to) {
		if err := r.saveSnapshot(ctx, stream, a); err != nil {
			r.logger.Warn("aggregate: snapshot failed; the events are saved", slog.String("stream", stream), slog.Int64("version", to), slog.Any("error", err))
		}
	}
	return nil
}

func (r *Repository[A]) saveSnapshot(ctx context.Context, stream string, a A) error {
	payload, err := r.def.Codec.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode %s state: %w", r.def.Type, err)
	}
	return r.snapshots.SaveSnapshot(ctx, eventstore.Snapshot{
		StreamID: stream, Version: a.root().version, StateVersion: r.def.StateVersion,
		Type: r.def.Type, ContentType: r.def.Codec.ContentType(), Payload: payload,
	})
}

// encode returns root's uncommitted events as store events with their
// envelope.
func (r *Repository[A]) encode(ctx context.Context, root *Root) ([]eventstore.Event, error) {
	handled := framework.Message(ctx)
	events := make([]eventstore.Event, len(root.changes))
	for i, v := range root.changes {
		name := framework.TypeName(v)
		if _, ok := r.def.byName[name]; !ok {
			return nil, fmt.Errorf("aggregate: save %s: recorded a %T (%s), which is not one of the Events of %q", r.def.Stream(root.id), v, name, r.def.Type)
		}
		msg := message.NewMessage(watermill.NewUUID(), nil)
		middleware.Correlate(handled, msg)
		md := msg.Metadata
		md[millrace.MetadataEntityID] = root.id
		if r.service != "" {
			md[millrace.MetadataPublishedBy] = r.service
		}
		e, err := eventstore.NewEvent(r.def.Codec, v, md)
		if err != nil {
			return nil, fmt.Errorf("aggregate: save %s: %w", r.def.Stream(root.id), err)
		}
		e.ID = msg.UUID
		events[i] = e
	}
	return events, nil
}

// Handle runs a command on the aggregate with id: it loads the aggregate,
// calls decide (which records events, see [Record], or returns an error),
// and saves what decide recorded. When the save meets a concurrent writer
// it does all three again, with the aggregate as the other writer left it,
// up to the repository's [Attempts] in all; then it returns the
// *[eventstore.ConflictError]. decide's error is returned as it is, with
// nothing saved. It returns the aggregate as saved.
func (r *Repository[A]) Handle(ctx context.Context, id string, decide func(ctx context.Context, a A) error) (A, error) {
	var zero A
	for attempt := 1; ; attempt++ {
		a, err := r.Load(ctx, id)
		if err != nil {
			return zero, err
		}
		if err := decide(ctx, a); err != nil {
			return zero, err
		}
		err = r.Save(ctx, a)
		if err == nil {
			return a, nil
		}
		if !errors.Is(err, eventstore.ErrConflict) || attempt >= r.attempts {
			if errors.Is(err, eventstore.ErrConflict) {
				return zero, fmt.Errorf("aggregate: %s: still in conflict after %d attempts: %w", r.def.Stream(id), attempt, err)
			}
			return zero, err
		}
		if err := ctx.Err(); err != nil {
			return zero, err
		}
	}
}
