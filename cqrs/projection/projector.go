package projection

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/millrace/millrace/cqrs/eventstore"
	"github.com/millrace/millrace/framework"
)

// maxSwitchBatches bounds the batches a switch applies in its transaction
// to catch the new generation up with the last events; a rebuild still that
// far behind builds on and tries again.
const maxSwitchBatches = 10

// Projector runs one projection: it follows the event store's global order
// and applies each event to the live generation of the read model, in
// batches, each batch's read-model writes and the projection's checkpoint
// (the position of the last event applied) in one transaction of the read
// model's database. A process killed at any point leaves either the whole
// batch applied and its checkpoint moved, or neither: no event is applied
// twice or skipped. Several instances may run one projection: batches are
// serialised by a lock (an advisory lock on PostgreSQL, the projection's
// row on MySQL), so each event is still applied once.
//
// [Projector.Rebuild] fills a new generation from the first event while
// the live one keeps serving and following, then makes it live.
type Projector struct {
	db       *sql.DB
	store    eventstore.Store
	def      Definition
	handlers map[string]Handler
	cfg      Config
	st       statements
	logger   *slog.Logger
	notify   *notifier

	mu        sync.Mutex
	observers []func(Generation, []eventstore.Event)
	stats     Stats

	metrics *collector
}

// Stats are what a projector has applied to the live generation since it
// was made.
type Stats struct {
	// Applied counts the events applied (including skipped types).
	Applied int64
	// Position is that of the last event applied.
	Position eventstore.Position
	// LastRecordedAt is when the last event applied was recorded.
	LastRecordedAt time.Time
	// CaughtUp is whether the last batch found the projection at the end
	// of the store.
	CaughtUp bool
	// Failures counts batches that failed (and were retried).
	Failures int64
}

// Option adjusts a [Projector].
type Option func(*Projector)

// WithLogger is where the projector reports failed batches (retried) and
// lost notifications; default nowhere. [Projector.RunIn] uses the App's.
func WithLogger(l *slog.Logger) Option { return func(p *Projector) { p.logger = l } }

// notifying is an event store that notifies a PostgreSQL channel on every
// commit (package sql's Store).
type notifying interface {
	DB() *sql.DB
	NotifyChannel() string
}

// New returns the projector of def, reading events from store and keeping
// the read model and the checkpoints in db. It creates the checkpoint
// tables if they do not exist and, for a projection that has none, its
// first generation (def.Schema), live from the first event; it drops the
// tables of generations a switch retired. A store that notifies on commit
// (package sql's on PostgreSQL) wakes the projector within milliseconds of
// a commit; otherwise it polls every cfg.PollInterval. store may be nil
// for a projection fed only by [Projector.Consume]: then Run, CatchUp and
// Rebuild fail.
func New(ctx context.Context, db *sql.DB, store eventstore.Store, def Definition, cfg Config, opts ...Option) (*Projector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	handlers, err := def.validate()
	if err != nil {
		return nil, err
	}
	if db == nil {
		return nil, fmt.Errorf("projection %s: nil database", def.Name)
	}
	p := &Projector{
		db: db, store: store, def: def, handlers: handlers, cfg: cfg,
		st: newStatements(cfg.Dialect, cfg.TablePrefix), logger: slog.New(slog.DiscardHandler),
	}
	for _, opt := range opts {
		opt(p)
	}
	if n, ok := store.(notifying); ok && n.NotifyChannel() != "" {
		p.notify = &notifier{db: n.DB(), channel: n.NotifyChannel()}
	}
	if p.cfg.PollInterval == 0 {
		p.cfg.PollInterval = 10 * time.Millisecond
		if p.notify != nil {
			p.cfg.PollInterval = time.Second
		}
	}
	p.metrics = newCollector(def.Name, p)
	if err := p.init(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// Definition returns the projection's definition.
func (p *Projector) Definition() Definition { return p.def }

// OnApplied calls fn after every batch that committed, with the generation
// it was applied to and its events; for measurements and tests. Call it
// before Run.
func (p *Projector) OnApplied(fn func(g Generation, events []eventstore.Event)) {
	p.mu.Lock()
	p.observers = append(p.observers, fn)
	p.mu.Unlock()
}

// Stats returns the projector's counts.
func (p *Projector) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// Collector returns the projector's metrics (see [Projector.RunIn]), for
// a Prometheus registry of the caller's.
func (p *Projector) Collector() prometheus.Collector { return p.metrics }

// RunIn runs the projector in app (framework.App.Go) from Start until
// shutdown, logging through the App's logger, and registers its metrics
// with the App (millrace_projection_lag_seconds,
// millrace_projection_applied_total, millrace_projection_apply_lag_seconds).
// Call it before the App starts.
func (p *Projector) RunIn(app *framework.App) error {
	p.logger = app.Logger()
	if err := app.RegisterMetrics(p.metrics); err != nil {
		return fmt.Errorf("projection %s: %w", p.def.Name, err)
	}
	app.Go("projection "+p.def.Name, p.Run)
	return nil
}

// Run follows the store until ctx ends, applying every event to the live
// generation, a batch at a time; it returns nil when ctx ends, after the
// batch in hand. A batch that fails (the database, a handler's error) is
// rolled back, logged and tried again after a backoff (50ms, doubling up to
// 5s): the projection stops advancing until it succeeds, and its lag
// metric grows.
func (p *Projector) Run(ctx context.Context) error {
	wake := make(chan struct{}, 1)
	if p.notify != nil {
		go p.notify.listen(ctx, p.cfg.CallTimeout, p.logger, wake)
	}
	backoff, recheck := time.Duration(0), time.Duration(0)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for ctx.Err() == nil {
		n, caughtUp, err := p.batch(context.WithoutCancel(ctx), 0)
		wait := p.cfg.PollInterval
		switch {
		case err != nil:
			p.mu.Lock()
			p.stats.Failures++
			p.mu.Unlock()
			backoff = min(max(2*backoff, 50*time.Millisecond), 5*time.Second)
			p.logger.Warn("projection: batch failed; it is tried again", slog.String("projection", p.def.Name), slog.Any("error", err), slog.Duration("retry_in", backoff))
			wait = backoff
		case !caughtUp:
			backoff = 0
			continue
		case n > 0:
			backoff, recheck = 0, 0
		case recheck > 0:
			// Woken by a commit whose events were not readable yet (on
			// PostgreSQL a transaction that began before it is still
			// open): look again soon, then less and less often.
			wait, recheck = recheck, min(2*recheck, p.cfg.PollInterval)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
		case <-wake:
			if recheck == 0 {
				recheck = 2 * time.Millisecond
			}
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
	return nil
}

// CatchUp applies events to the live generation until it has applied every
// event readable when it began, and returns; for tests, tools and
// benchmarks. Errors are returned, not retried.
func (p *Projector) CatchUp(ctx context.Context) error {
	for {
		_, caughtUp, err := p.batch(ctx, 0)
		if err != nil || caughtUp {
			return err
		}
	}
}

// errNoStore: a projection without a store has nothing to follow.
var errNoStore = errors.New("projection: no event store to follow (a projection fed by Consume)")

// errSwitched: the generation built is no longer building.
var errSwitched = errors.New("generation is no longer building")

// batch applies one batch to the live generation (gen 0) or to generation
// gen, which must be building. caughtUp reports a batch that was not full.
func (p *Projector) batch(ctx context.Context, gen int) (n int, caughtUp bool, err error) {
	if p.store == nil {
		return 0, false, errNoStore
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.CallTimeout)
	defer cancel()
	tx, err := p.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return 0, false, p.fail(ctx, "begin", err)
	}
	defer func() { _ = tx.Rollback() }()
	live := gen == 0
	if live {
		if gen, err = p.lockHead(ctx, tx); err != nil {
			return 0, false, err
		}
	} else if err := p.lockGeneration(ctx, tx, gen); err != nil {
		return 0, false, err
	}
	state, pos, err := p.checkpoint(ctx, tx, gen)
	if err != nil {
		return 0, false, err
	}
	if !live && state != stateBuilding {
		return 0, true, errSwitched
	}
	g := Generation{n: gen}
	events, err := p.store.ReadAll(ctx, pos, p.cfg.BatchSize)
	if err != nil {
		return 0, false, fmt.Errorf("projection %s: %w", p.def.Name, err)
	}
	if len(events) == 0 {
		p.record(live, g, nil)
		return 0, true, nil
	}
	if err := p.apply(ctx, tx, g, events); err != nil {
		return 0, false, err
	}
	if err := p.advance(ctx, tx, gen, events); err != nil {
		return 0, false, err
	}
	if err := tx.Commit(); err != nil {
		return 0, false, p.fail(ctx, "commit", err)
	}
	p.record(live, g, events)
	return len(events), len(events) < p.cfg.BatchSize, nil
}

// lockHead takes the projection's live lock in tx and returns the live
// generation.
func (p *Projector) lockHead(ctx context.Context, tx *sql.Tx) (int, error) {
	if p.st.lockXact != "" {
		if _, err := tx.ExecContext(ctx, p.st.lockXact, p.key("live")); err != nil {
			return 0, p.fail(ctx, "lock", err)
		}
	}
	var gen int
	if err := tx.QueryRowContext(ctx, p.st.head, p.def.Name).Scan(&gen); err != nil {
		return 0, p.fail(ctx, "read the live generation", err)
	}
	return gen, nil
}

// lockGeneration takes generation gen's lock in tx (on MySQL, the
// checkpoint's read does).
func (p *Projector) lockGeneration(ctx context.Context, tx *sql.Tx, gen int) error {
	if p.st.lockXact == "" {
		return nil
	}
	if _, err := tx.ExecContext(ctx, p.st.lockXact, p.key("generation "+strconv.Itoa(gen))); err != nil {
		return p.fail(ctx, "lock", err)
	}
	return nil
}

func (p *Projector) checkpoint(ctx context.Context, tx *sql.Tx, gen int) (string, eventstore.Position, error) {
	var state string
	var ptx, seq int64
	if err := tx.QueryRowContext(ctx, p.st.checkpoint, p.def.Name, gen).Scan(&state, &ptx, &seq); err != nil {
		return "", eventstore.Position{}, p.fail(ctx, fmt.Sprintf("read the checkpoint of generation %d", gen), err)
	}
	return state, eventstore.Position{Tx: uint64(ptx), Seq: seq}, nil
}

// apply runs the handlers of events in tx.
func (p *Projector) apply(ctx context.Context, tx *sql.Tx, g Generation, events []eventstore.Event) error {
	for _, e := range events {
		h, ok := p.handlers[e.Type]
		if !ok {
			continue
		}
		if err := h.apply(ctx, tx, g, p.def.Codec, e); err != nil {
			return fmt.Errorf("projection %s: generation %d: event %s at %s (%s): %w", p.def.Name, g.n, e.ID, e.Position, e.Type, err)
		}
	}
	return nil
}

func (p *Projector) advance(ctx context.Context, tx *sql.Tx, gen int, events []eventstore.Event) error {
	last := events[len(events)-1].Position
	if _, err := tx.ExecContext(ctx, p.st.advance, int64(last.Tx), last.Seq, len(events), p.def.Name, gen); err != nil {
		return p.fail(ctx, "move the checkpoint", err)
	}
	return nil
}

// record updates the stats of the live generation and tells the observers.
func (p *Projector) record(live bool, g Generation, events []eventstore.Event) {
	p.mu.Lock()
	if live {
		p.stats.CaughtUp = len(events) < p.cfg.BatchSize
		if len(events) > 0 {
			last := events[len(events)-1]
			p.stats.Applied += int64(len(events))
			p.stats.Position, p.stats.LastRecordedAt = last.Position, last.RecordedAt
		}
	}
	observers := p.observers
	p.mu.Unlock()
	if len(events) == 0 {
		return
	}
	if live {
		p.metrics.applied(events)
	}
	for _, fn := range observers {
		fn(g, events)
	}
}

// key is the advisory lock key of the projection's what.
func (p *Projector) key(what string) int64 {
	return lockKey("millrace projection " + p.cfg.TablePrefix + " " + p.def.Name + " " + what)
}

// fail wraps err of what, naming the CallTimeout when it ran out.
func (p *Projector) fail(ctx context.Context, what string, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("projection %s: %s: no answer within %s (projection.Config.CallTimeout): %w", p.def.Name, what, p.cfg.CallTimeout, err)
	}
	return fmt.Errorf("projection %s: %s: %w", p.def.Name, what, err)
}

// adminName is the MySQL named lock of the projection (at most 64
// characters).
func (p *Projector) adminName() string {
	h := fnv.New64a()
	_, _ = h.Write([]byte(p.cfg.TablePrefix + " " + p.def.Name))
	return "millrace_projection_" + strconv.FormatUint(h.Sum64(), 16)
}
