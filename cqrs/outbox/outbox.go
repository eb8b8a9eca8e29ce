package outbox

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/cqrs"
	"github.com/millrace/millrace/framework"
	"github.com/millrace/millrace/middleware"
)

// prepareKey is the metadata a command carries in the outbox: the
// consumer group the relay prepares the command's topic for before it
// publishes it (see framework.App.Prepare). It is not published.
const prepareKey = "_millrace_outbox_prepare"

// Outbox writes messages in the caller's database transaction and relays
// them to the App's transport once the transaction has committed: if it
// commits, they are published, even when the broker is down at that moment
// (they go out when it is back); if it rolls back, nothing is. Each
// message keeps its id, so consumers deduplicate the rare copy a relay that
// died mid-batch leaves behind.
//
// Its inbox side ([Outbox.InTx]) makes a handler's effects exactly once: its
// writes, the handled message's dedup mark and the messages it publishes
// commit in one transaction.
type Outbox struct {
	bus  *cqrs.Bus
	app  *framework.App
	db   *sql.DB
	cfg  Config
	stmt statements

	prepared map[string]bool // topic\x00group prepared by the relay (relay goroutine only)
	batch    int             // the relay's batch size now (relay goroutine only; 0: BatchSize)
	stats    stats
}

// New returns the outbox of bus's App in db, configured by cfg (see
// [DefaultConfig]), and creates its tables if they do not exist, within
// cfg.CallTimeout. With cfg.Relay it registers the relay with the App
// (framework.App.Go), so call New before the App starts. Closing db is the
// caller's job, after the App stopped.
func New(ctx context.Context, bus *cqrs.Bus, db *sql.DB, cfg Config) (*Outbox, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if db == nil {
		return nil, errors.New("outbox: nil *sql.DB")
	}
	o := &Outbox{bus: bus, app: bus.App(), db: db, cfg: cfg, stmt: newStatements(cfg.Dialect, cfg.TablePrefix), prepared: map[string]bool{}}
	if err := o.createSchema(ctx); err != nil {
		return nil, err
	}
	// Metrics first: a second outbox on the same table fails here, before
	// its relay is registered with the App.
	if err := o.app.RegisterMetrics(newCollector(o)); err != nil {
		return nil, fmt.Errorf("outbox: metrics of table %s: %w", cfg.TablePrefix+"outbox", err)
	}
	if cfg.Relay {
		o.app.Go("outbox relay", o.relay)
	}
	return o, nil
}

// createSchema creates the tables; on PostgreSQL under an advisory lock, as
// several instances may start at once.
func (o *Outbox) createSchema(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, o.cfg.CallTimeout)
	defer cancel()
	tx, err := o.db.BeginTx(ctx, nil)
	if err != nil {
		return o.timedOut(ctx, "create tables: connect", err)
	}
	defer func() { _ = tx.Rollback() }()
	if o.cfg.Dialect == Postgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext('millrace outbox schema'))`); err != nil {
			return o.timedOut(ctx, "create tables", err)
		}
	}
	for _, q := range o.stmt.schema {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return o.timedOut(ctx, "create tables", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return o.timedOut(ctx, "create tables", err)
	}
	return nil
}

// timedOut wraps err of what, naming the timeout when ctx ran out.
func (o *Outbox) timedOut(ctx context.Context, what string, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("outbox: %s: no answer within %s (outbox.Config.CallTimeout): %w", what, o.cfg.CallTimeout, err)
	}
	return fmt.Errorf("outbox: %s: %w", what, err)
}

// PublishMessage writes msgs for topic in tx, stamped with the envelope as
// App.PublishMessage would (in a handler's ctx they inherit its
// correlation id). They are published, in this order, once tx commits.
func (o *Outbox) PublishMessage(ctx context.Context, tx *sql.Tx, topic string, msgs ...*message.Message) error {
	if topic == "" {
		return errors.New("outbox: empty topic")
	}
	if tx == nil {
		return errors.New("outbox: nil transaction")
	}
	if len(msgs) == 0 {
		return nil
	}
	o.app.Stamp(ctx, msgs...)
	args := make([]any, 0, 4*len(msgs))
	for _, m := range msgs {
		md, err := json.Marshal(m.Metadata)
		if err != nil {
			return fmt.Errorf("outbox: metadata of %s: %w", m.UUID, err)
		}
		payload := m.Payload
		if payload == nil {
			payload = []byte{}
		}
		args = append(args, topic, m.UUID, payload, string(md))
	}
	cctx, cancel := context.WithTimeout(ctx, o.cfg.CallTimeout)
	defer cancel()
	if _, err := tx.ExecContext(cctx, o.stmt.insert(len(msgs)), args...); err != nil {
		return o.timedOut(cctx, fmt.Sprintf("write %d messages for %s", len(msgs), topic), err)
	}
	return nil
}

// Send writes command c in tx, to be sent to its handler once tx commits
// (see [cqrs.Send]; the relay makes the command's group keep it before it
// sends).
func Send[C any](ctx context.Context, tx *sql.Tx, o *Outbox, c C, opts ...framework.PublishOption) error {
	topic, group, msg, err := cqrs.Message(o.bus, c, opts...)
	if err != nil {
		return err
	}
	msg.Metadata.Set(prepareKey, group)
	return o.PublishMessage(ctx, tx, topic, msg)
}

// Publish writes event e in tx, to be published to every handler of its
// type once tx commits (see [cqrs.Publish]).
func Publish[E any](ctx context.Context, tx *sql.Tx, o *Outbox, e E, opts ...framework.PublishOption) error {
	topic, _, msg, err := cqrs.Message(o.bus, e, opts...)
	if err != nil {
		return err
	}
	return o.PublishMessage(ctx, tx, topic, msg)
}

// completer is the dedup store that can mark a key done in a transaction
// (middleware/dedupstore/sql's Store).
type completer interface {
	CompleteTx(ctx context.Context, tx *sql.Tx, key, owner string, ttl time.Duration) error
}

// ErrInboxStore is returned by [Outbox.InTx] when the handler's dedup store
// cannot record the handled mark in the outbox's database: the inbox needs
// middleware.dedup.store postgres or mysql, in the same database.
var ErrInboxStore = errors.New("outbox: the handler's dedup store cannot mark the message done in the outbox's transaction (set middleware.dedup.store to postgres or mysql, on the outbox's database)")

// InTx runs fn in one transaction of the outbox's database and commits it
// when fn returns nil: fn's own writes, what fn publishes through the
// outbox with tx, and, in a handler, the handled message's "done" mark (its
// dedup claim, see middleware.ClaimFrom) all commit, or none does. A
// redelivered message whose mark has committed is acked without running the
// handler: at-least-once delivery, exactly-once effects. A handler without
// deduplication (switched off) gets the transaction without the mark; one
// whose dedup store is not SQL gets [ErrInboxStore] (permanent). fn's error
// is returned as it is, after the rollback.
func (o *Outbox) InTx(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	claim := middleware.ClaimFrom(ctx)
	var mark completer
	if claim != nil {
		c, ok := claim.Store.(completer)
		if !ok {
			return millrace.Permanent(ErrInboxStore)
		}
		mark = c
	}
	tx, err := o.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("outbox: begin: %w", err)
	}
	// Rolled back on every way out but a commit, a panic in fn included: an
	// open transaction would hold its connection and, on PostgreSQL, hold
	// back every relay of the database (they relay below the oldest open
	// transaction).
	defer func() { _ = tx.Rollback() }()
	if err := fn(ctx, tx); err != nil {
		return err
	}
	if mark != nil {
		if err := mark.CompleteTx(ctx, tx, claim.Key, claim.Owner, claim.TTL); err != nil {
			return fmt.Errorf("outbox: mark %s done: %w", claim.Key, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("outbox: commit: %w", err)
	}
	if claim != nil {
		claim.MarkCompleted()
	}
	return nil
}
