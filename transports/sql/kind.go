package sql

import (
	"context"
	stdsql "database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // registers driver "pgx"

	"github.com/millrace/millrace/transports"
)

// ErrClosed is returned by Subscriber, Subscribe, Delay, Browse and Publish
// (also of a TxPublisher) once the transport or subscriber is closed.
var ErrClosed = errors.New("sql transport: closed")

var errConfigType = errors.New("sql transport: config must be a *sqltransport.Config")

// PostgresKind describes the PostgreSQL transport: selected by
// transport.kind "postgres", configured by transport.postgres (a *Config,
// defaults from PostgresDefaultConfig).
func PostgresKind() transports.Kind {
	return transports.Kind{
		Name:          "postgres",
		DefaultConfig: func() any { return PostgresDefaultConfig() },
		Open: func(ctx context.Context, cfg any, deps transports.Deps) (transports.Transport, error) {
			return openKind(ctx, postgres, cfg, deps)
		},
	}
}

// MySQLKind describes the MySQL/MariaDB transport: selected by
// transport.kind "mysql", configured by transport.mysql (a *Config,
// defaults from MySQLDefaultConfig).
func MySQLKind() transports.Kind {
	return transports.Kind{
		Name:          "mysql",
		DefaultConfig: func() any { return MySQLDefaultConfig() },
		Open: func(ctx context.Context, cfg any, deps transports.Deps) (transports.Transport, error) {
			return openKind(ctx, mysqlDialect, cfg, deps)
		},
	}
}

func openKind(ctx context.Context, d dialect, cfg any, deps transports.Deps) (transports.Transport, error) {
	c, ok := cfg.(*Config)
	if !ok || c == nil {
		return nil, errConfigType
	}
	return open(ctx, d, *c, deps.Logger)
}

// Transport is an open SQL transport: a connection pool, one publisher, the
// subscribers made by Subscriber and the poller of delayed messages. It
// implements transports.Transport, middleware.Delayer and dlq.Browser, and
// publishes in a caller's transaction with TxPublisher.
type Transport struct {
	cfg     Config
	dialect dialect
	db      *stdsql.DB
	logger  watermill.LoggerAdapter
	schema  schema
	pub     *publisher
	delay   *delayer
	tables  sync.Map // topics whose tables exist

	mu     sync.Mutex
	closed bool
	subs   []*groupSubscriber
}

// OpenPostgres connects to PostgreSQL, checks the connection, creates the
// delayed messages table if missing and starts the delayed messages
// poller. cfg is validated first. Errors never contain the DSN's password.
// A nil logger means slog.Default().
func OpenPostgres(ctx context.Context, cfg Config, logger *slog.Logger) (*Transport, error) {
	return open(ctx, postgres, cfg, logger)
}

// OpenMySQL is OpenPostgres for MySQL and MariaDB.
func OpenMySQL(ctx context.Context, cfg Config, logger *slog.Logger) (*Transport, error) {
	return open(ctx, mysqlDialect, cfg, logger)
}

func open(ctx context.Context, d dialect, cfg Config, logger *slog.Logger) (*Transport, error) {
	cfg.dialect = d
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	wlog := transports.WatermillLogger(logger)
	redact := newRedactor(cfg.DSN)
	db, err := stdsql.Open(d.driverName(), cfg.DSN)
	if err != nil {
		return nil, redact.wrap(fmt.Sprintf("%s: open %s", d, transports.RedactDSN(cfg.DSN)), err)
	}
	db.SetMaxIdleConns(cfg.MaxIdleConns)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, redact.wrap(fmt.Sprintf("%s: connect %s", d, transports.RedactDSN(cfg.DSN)), err)
	}
	t := &Transport{
		cfg:     cfg,
		dialect: d,
		db:      db,
		logger:  wlog,
		schema:  schema{d: d, prefix: cfg.TablePrefix, batchSize: cfg.BatchSize},
	}
	t.pub = &publisher{t: t}
	t.delay, err = newDelayer(ctx, t)
	if err != nil {
		_ = db.Close()
		return nil, redact.wrap(fmt.Sprintf("%s: delayed messages table", d), err)
	}
	return t, nil
}

// Publisher returns the transport's publisher: Publish inserts the
// messages into the topic's table (created on first use) and returns once
// they are committed. Messages of one Publish call keep their order and
// are inserted by one statement, together with those of concurrent calls
// to the same topic that arrived while the previous statement ran.
func (t *Transport) Publisher() message.Publisher { return t.pub }

// Subscriber returns a subscriber consuming as consumer group group. Each
// Subscribe call reads both the topic and the group's private topic that
// Delay feeds, merged into one channel. group must consist of letters,
// digits and - $ : . _ (it becomes part of a table name).
func (t *Transport) Subscriber(group string) (message.Subscriber, error) {
	if !validName.MatchString(group) {
		return nil, fmt.Errorf("%s: consumer group %q: only letters, digits and - $ : . _ are allowed", t.dialect, group)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ErrClosed
	}
	s := newGroupSubscriber(t, group)
	t.subs = append(t.subs, s)
	return s, nil
}

func (t *Transport) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// Close stops the delayed messages poller, closes every subscriber the
// transport made and its publisher, then the connection pool. It is safe
// to call more than once; later calls return nil.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	subs := t.subs
	t.subs = nil
	t.mu.Unlock()

	t.delay.close()
	// Concurrently: a subscription of one subscriber may wait for an
	// offsets row that a subscription of another holds.
	errs := make([]error, len(subs), len(subs)+2)
	var wg sync.WaitGroup
	for i, s := range subs {
		wg.Go(func() { errs[i] = s.Close() })
	}
	wg.Wait()
	errs = append(errs, t.pub.Close(), t.db.Close())
	return errors.Join(errs...)
}

// redactor removes a DSN and its password from driver errors, which may
// quote them.
type redactor struct{ dsn, password string }

func newRedactor(dsn string) redactor {
	r := redactor{dsn: dsn}
	if u, err := url.Parse(dsn); err == nil && strings.Contains(dsn, "://") {
		r.password, _ = u.User.Password()
	} else if c, err := mysql.ParseDSN(dsn); err == nil {
		r.password = c.Passwd
	} else if c, err := pgx.ParseConfig(dsn); err == nil {
		r.password = c.Password
	}
	return r
}

func (r redactor) clean(s string) string {
	s = strings.ReplaceAll(s, r.dsn, transports.RedactDSN(r.dsn))
	if r.password != "" {
		s = strings.ReplaceAll(s, r.password, transports.Redacted)
	}
	return s
}

func (r redactor) wrap(context string, err error) error {
	return &redactedError{msg: context + ": " + r.clean(err.Error()), err: err}
}

// redactedError is an error whose text has the password removed; Unwrap
// gives the driver's error for errors.Is and errors.As.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
