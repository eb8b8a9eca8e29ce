package sql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/go-sql-driver/mysql"

	"github.com/millrace/millrace/cqrs/eventstore"
)

// DefaultCallTimeout bounds every call of a [Store] unless [CallTimeout]
// says otherwise.
const DefaultCallTimeout = 10 * time.Second

// DefaultTablePrefix is the prefix of the store's tables unless
// [TablePrefix] says otherwise: millrace_es_events, millrace_es_streams,
// millrace_es_snapshots (and, on MySQL, millrace_es_sequence).
const DefaultTablePrefix = "millrace_es_"

// maxAttempts bounds Append's retries when the database aborts it as a
// deadlock or serialization victim, before anything was stored.
const maxAttempts = 5

// Store is an [eventstore.Store], [eventstore.TxAppender] and
// [eventstore.SnapshotStore] kept in PostgreSQL or MySQL/MariaDB tables
// (see the package documentation for the schema and the global order). It
// is safe for concurrent use by any number of processes sharing the
// tables.
type Store struct {
	db        *sql.DB
	dialect   Dialect
	prefix    string
	q         queries
	timeout   time.Duration
	upcasters *eventstore.Upcasters
	group     appender
}

var (
	_ eventstore.Store         = (*Store)(nil)
	_ eventstore.TxAppender    = (*Store)(nil)
	_ eventstore.SnapshotStore = (*Store)(nil)
)

// Option adjusts a [Store].
type Option func(*Store)

// CallTimeout bounds every call of the store to d: its statements, and the
// connection the first of them may have to open, so that a database that
// accepts connections and never answers fails the call with an error naming
// the timeout instead of holding it for ever. A caller's earlier deadline
// still wins; 0 leaves calls bounded by their context alone. Default
// [DefaultCallTimeout].
func CallTimeout(d time.Duration) Option {
	return func(s *Store) { s.timeout = d }
}

// TablePrefix names the store's tables: prefix followed by events, streams,
// snapshots (and sequence on MySQL). prefix is empty or starts with a
// letter or underscore, then letters, digits and underscores, at most 40
// bytes. Stores with different prefixes share a database without seeing
// each other. Default [DefaultTablePrefix].
func TablePrefix(prefix string) Option {
	return func(s *Store) { s.prefix = prefix }
}

// UpcastWith makes every read of the store (ReadStream, ReadAll) return
// events upcast by u; see [eventstore.Upcasters].
func UpcastWith(u *eventstore.Upcasters) Option {
	return func(s *Store) { s.upcasters = u }
}

// New returns a Store on db, spoken to in dialect. It does not touch the
// database: call [Store.CreateSchema] or create the tables by migration.
func New(db *sql.DB, dialect Dialect, opts ...Option) (*Store, error) {
	if db == nil {
		return nil, errors.New("eventstore sql: db is nil")
	}
	s := &Store{db: db, dialect: dialect, prefix: DefaultTablePrefix, timeout: DefaultCallTimeout}
	for _, opt := range opts {
		opt(s)
	}
	if !validPrefix(s.prefix) {
		return nil, fmt.Errorf("eventstore sql: invalid table prefix %q: want letters, digits and underscores, not starting with a digit, at most %d bytes", s.prefix, maxPrefixLen)
	}
	q, err := newQueries(dialect, s.prefix)
	if err != nil {
		return nil, err
	}
	s.q = q
	return s, nil
}

// Dialect returns the store's dialect.
func (s *Store) Dialect() Dialect { return s.dialect }

// DB returns the database the store is kept in.
func (s *Store) DB() *sql.DB { return s.db }

// NotifyChannel returns the PostgreSQL channel every append notifies when
// it commits, "<prefix>events" (a trigger CreateSchema creates), for
// followers that LISTEN instead of polling; "" on MySQL, which has no
// notifications.
func (s *Store) NotifyChannel() string {
	if s.dialect != Postgres {
		return ""
	}
	return s.prefix + "events"
}

// TablePrefix returns the prefix of the store's tables.
func (s *Store) TablePrefix() string { return s.prefix }

// CreateSchema creates the store's tables unless they exist; it does not
// alter existing ones. On PostgreSQL it holds an advisory lock meanwhile,
// so processes starting together do not trip over each other.
func (s *Store) CreateSchema(ctx context.Context) error {
	c := s.start(ctx)
	defer c.cancel()
	if s.dialect == MySQL {
		for _, q := range s.q.schema {
			if _, err := s.db.ExecContext(c.ctx, q); err != nil {
				return c.fail("create schema", err)
			}
		}
		return nil
	}
	tx, err := s.db.BeginTx(c.ctx, nil)
	if err != nil {
		return c.fail("create schema", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(c.ctx, "SELECT pg_advisory_xact_lock($1)", lockKey("millrace eventstore "+s.prefix)); err != nil {
		return c.fail("create schema", err)
	}
	for _, q := range s.q.schema {
		if _, err := tx.ExecContext(c.ctx, q); err != nil {
			return c.fail("create schema", err)
		}
	}
	return c.fail("create schema", tx.Commit())
}

// querier is what the store needs of *sql.DB and *sql.Tx.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Append implements [eventstore.Store.Append]. Concurrent calls are
// merged (group commit, see appender): an uncontended call runs at once,
// calls that arrive while one runs are stored together by the next one,
// each with its own expected version and outcome. On PostgreSQL that is
// one statement, on MySQL one transaction. An append is run again, up to 5
// times in all, when the database aborts it as a deadlock or serialization
// victim.
func (s *Store) Append(ctx context.Context, stream string, expected int64, events []eventstore.Event) (int64, error) {
	if err := eventstore.CheckAppend(stream, expected, events); err != nil {
		return 0, err
	}
	c := s.start(ctx)
	defer c.cancel()
	done, err := s.group.append(c.ctx, s, newBatch(stream, expected, events))
	if err != nil {
		return 0, c.failAppend(stream, err)
	}
	done.apply(events)
	return done.version, nil
}

// appendAlone stores b alone, in a statement or transaction of its own,
// trying again when the database chose it as a deadlock or serialization
// victim.
func (s *Store) appendAlone(ctx context.Context, b *batch) (*appended, error) {
	var err error
	for range maxAttempts {
		var done []*appended
		var refused []error
		if s.dialect == MySQL {
			done, refused, err = s.appendMySQLTx(ctx, []*batch{b})
		} else {
			done, refused, err = s.appendPostgres(ctx, s.db, []*batch{b})
		}
		if err == nil {
			return done[0], refused[0]
		}
		if !retryable(err) {
			break
		}
	}
	return nil, err
}

// AppendTx implements [eventstore.TxAppender]: Append inside tx, never
// merged with other calls. Use READ COMMITTED transactions: under
// REPEATABLE READ, PostgreSQL fails tx with a serialization error (SQLSTATE
// 40001) instead of a ConflictError when another append to the stream
// committed meanwhile, and so do MySQL 8 and MariaDB 11.6.2+
// (innodb_snapshot_isolation) when tx read the stream's tables first. On
// PostgreSQL append to several streams in the order of their ids (see the
// package documentation). On MySQL an append holds the store's sequence
// lock until tx ends, so every other append of the store waits for it:
// append last in tx and commit at once.
func (s *Store) AppendTx(ctx context.Context, tx *sql.Tx, stream string, expected int64, events []eventstore.Event) (int64, error) {
	if tx == nil {
		return 0, errors.New("eventstore sql: append: tx is nil")
	}
	if err := eventstore.CheckAppend(stream, expected, events); err != nil {
		return 0, err
	}
	c := s.start(ctx)
	defer c.cancel()
	bs := []*batch{newBatch(stream, expected, events)}
	var done []*appended
	var refused []error
	var err error
	if s.dialect == MySQL {
		done, refused, err = s.appendMySQL(c.ctx, tx, bs)
	} else {
		done, refused, err = s.appendPostgres(c.ctx, tx, bs)
	}
	if err == nil {
		err = refused[0]
	}
	if err != nil {
		return 0, c.failAppend(stream, err)
	}
	done[0].apply(events)
	return done[0].version, nil
}

// appendMySQLTx runs the appends bs in a transaction of their own.
func (s *Store) appendMySQLTx(ctx context.Context, bs []*batch) ([]*appended, []error, error) {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return nil, nil, err
	}
	done, refused, err := s.appendMySQL(ctx, tx, bs)
	if err != nil {
		_ = tx.Rollback()
		return nil, nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, nil, err
	}
	return done, refused, nil
}

// ReadStream implements [eventstore.Store.ReadStream].
func (s *Store) ReadStream(ctx context.Context, stream string, from int64, opts eventstore.ReadOptions) ([]eventstore.Event, error) {
	if err := eventstore.CheckStream(stream); err != nil {
		return nil, err
	}
	c := s.start(ctx)
	defer c.cancel()
	from = max(from, 1)
	events, err := s.readStream(c.ctx, stream, from, opts)
	if err == nil {
		err = s.upcasters.UpcastAll(events)
	}
	if err != nil {
		return nil, c.fail(fmt.Sprintf("read stream %q", stream), err)
	}
	return events, nil
}

// ReadAll implements [eventstore.Store.ReadAll]; see the package
// documentation for how each dialect keeps readers from passing an
// append that has not committed yet.
func (s *Store) ReadAll(ctx context.Context, after eventstore.Position, limit int) ([]eventstore.Event, error) {
	if limit < 1 {
		return nil, fmt.Errorf("%w: read all: limit %d: want at least 1", eventstore.ErrInvalid, limit)
	}
	c := s.start(ctx)
	defer c.cancel()
	var events []eventstore.Event
	var err error
	if s.dialect == MySQL {
		events, err = s.readAllMySQL(c.ctx, after, limit)
	} else {
		events, err = s.query(c.ctx, s.db, eventstore.ReadOptions{}, s.q.readAll, after.Tx, after.Seq, limit)
	}
	if err == nil {
		err = s.upcasters.UpcastAll(events)
	}
	if err != nil {
		return nil, c.fail("read all", err)
	}
	return events, nil
}

// call is one bounded call of the store.
type call struct {
	ctx, parent context.Context
	cancel      context.CancelFunc
	timeout     time.Duration
}

// start bounds ctx by the store's call timeout, unless ctx ends sooner.
func (s *Store) start(ctx context.Context) call {
	c := call{ctx: ctx, parent: ctx, cancel: func() {}}
	if s.timeout <= 0 {
		return c
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= s.timeout {
		return c
	}
	c.ctx, c.cancel = context.WithTimeout(ctx, s.timeout)
	c.timeout = s.timeout
	return c
}

// fail wraps err, a failure of op, saying so when it was the store's call
// timeout that ended it. fail(op, nil) is nil.
func (c call) fail(op string, err error) error {
	if err == nil {
		return nil
	}
	if c.timeout > 0 && c.parent.Err() == nil && errors.Is(c.ctx.Err(), context.DeadlineExceeded) {
		if !errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
		}
		return fmt.Errorf("eventstore sql: %s: no answer within the store's CallTimeout of %v: %w", op, c.timeout, err)
	}
	return fmt.Errorf("eventstore sql: %s: %w", op, err)
}

// failAppend is fail for an append, passing a ConflictError through as is.
func (c call) failAppend(stream string, err error) error {
	var ce *eventstore.ConflictError
	if errors.As(err, &ce) {
		return err
	}
	return c.fail(fmt.Sprintf("append to %q", stream), err)
}

// currentVersion returns stream's version, 0 if it has no events.
func (s *Store) currentVersion(ctx context.Context, q querier, stream string) (int64, error) {
	var v int64
	err := q.QueryRowContext(ctx, s.q.version, stream).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return v, err
}

// conflict returns the ConflictError of an append to stream refused at
// expected, with the stream's actual version.
func (s *Store) conflict(ctx context.Context, q querier, stream string, expected int64) error {
	actual, err := s.currentVersion(ctx, q, stream)
	if err != nil {
		return fmt.Errorf("read version after a conflict: %w", err)
	}
	return &eventstore.ConflictError{Stream: stream, Expected: expected, Actual: actual}
}

// batch is an append's arguments, as the statements take them.
type batch struct {
	stream   string
	expected int64
	mode     int
	ids      []string
	types    []string
	cts      []string
	payloads [][]byte
	metadata []string
}

func newBatch(stream string, expected int64, events []eventstore.Event) *batch {
	n := len(events)
	b := &batch{
		stream: stream, expected: expected,
		ids: make([]string, n), types: make([]string, n), cts: make([]string, n),
		payloads: make([][]byte, n), metadata: make([]string, n),
	}
	switch expected {
	case eventstore.Any:
		b.mode = modeAny
	case eventstore.NoStream:
		b.mode = modeNoStream
	default:
		b.mode = modeExact
	}
	for i, e := range events {
		b.ids[i] = e.ID
		if b.ids[i] == "" {
			b.ids[i] = watermill.NewUUID()
		}
		b.types[i], b.cts[i] = e.Type, e.ContentType
		b.payloads[i] = e.Payload
		if b.payloads[i] == nil {
			b.payloads[i] = []byte{} // NOT NULL
		}
		b.metadata[i] = encodeMetadata(e.Metadata)
	}
	return b
}

// appended is what an append stored, to be set on the caller's events.
type appended struct {
	stream    string
	version   int64 // the stream's new version
	ids       []string
	positions []eventstore.Position
	at        []time.Time
}

func (a *appended) apply(events []eventstore.Event) {
	first := a.version - int64(len(events)) + 1
	for i := range events {
		e := &events[i]
		e.ID, e.StreamID, e.Version = a.ids[i], a.stream, first+int64(i)
		e.Position, e.RecordedAt = a.positions[i], a.at[i]
	}
}

// retryable reports whether err made the database abort a statement or
// transaction as a deadlock or serialization victim, which running it
// again resolves.
func retryable(err error) bool {
	var my *mysql.MySQLError
	if errors.As(err, &my) {
		return my.Number == 1213 // ER_LOCK_DEADLOCK
	}
	var pg interface{ SQLState() string }
	if errors.As(err, &pg) {
		switch pg.SQLState() {
		case "40001", "40P01": // serialization_failure, deadlock_detected
			return true
		}
	}
	return false
}
