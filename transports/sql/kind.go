package sql

import (
	"context"
	stdsql "database/sql"
	"database/sql/driver"
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
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/millrace/millrace/transports"
)

// errClosed is the error of calls that fail because the transport, or its
// subscriber called, is closed: Subscriber, Subscribe, Delay, Browse and
// Publish (also of a TxPublisher).
var errClosed = fmt.Errorf("sql: %w", transports.ErrClosed)

// PostgresKind describes the PostgreSQL transport for a
// [transports.Registry]: selected by transport.kind "postgres", configured
// by transport.postgres (a *[Config], defaults from
// [PostgresDefaultConfig]) and opened with [OpenPostgres].
func PostgresKind() transports.Kind {
	return transports.NewKind("postgres", PostgresDefaultConfig, OpenPostgres)
}

// MySQLKind describes the MySQL/MariaDB transport for a
// [transports.Registry]: selected by transport.kind "mysql", configured by
// transport.mysql (a *[Config], defaults from [MySQLDefaultConfig]) and
// opened with [OpenMySQL].
func MySQLKind() transports.Kind {
	return transports.NewKind("mysql", MySQLDefaultConfig, OpenMySQL)
}

// Transport is an open SQL transport: a connection pool, one publisher, the
// subscribers made by Subscriber and the poller of delayed messages. It
// implements [transports.Transport], [transports.EphemeralSubscriber],
// middleware.Delayer and dlq.Browser, and publishes in a caller's
// transaction with TxPublisher.
type Transport struct {
	cfg     Config
	dialect dialect
	db      *stdsql.DB
	logger  watermill.LoggerAdapter // the transport's own lines
	log     *slog.Logger            // deps.Logger, for subscriptionLogger
	schema  schema
	pub     *publisher
	delay   *delayer
	tables  sync.Map // topics whose tables exist
	query   *bound   // query_timeout
	connect *bound   // connect_timeout

	// subs are closed concurrently: closing one waits until its
	// subscriptions have settled their batches, which after a nack takes
	// resend_interval (watermill-sql sleeps it before delivering again).
	subs transports.Subscribers[*groupSubscriber]
	// ephemeral are the subscriptions of SubscribeEphemeral.
	ephemeral transports.Subscribers[*ephemeralSubscription]
}

// OpenPostgres connects to PostgreSQL, checks the connection, creates the
// delayed messages table if missing and starts the delayed messages
// poller. cfg is validated first. The connection, the ping and the table's
// creation are each bounded by cfg.ConnectTimeout: on a server that does
// not answer, Open fails with an error that names
// transport.postgres.connect_timeout, the address and what did not answer.
// Errors never contain the DSN's password. It logs to deps.Logger.
func OpenPostgres(ctx context.Context, cfg Config, deps transports.Deps) (*Transport, error) {
	return open(ctx, postgres, cfg, deps)
}

// OpenMySQL is [OpenPostgres] for MySQL and MariaDB.
func OpenMySQL(ctx context.Context, cfg Config, deps transports.Deps) (*Transport, error) {
	return open(ctx, mysqlDialect, cfg, deps)
}

func open(ctx context.Context, d dialect, cfg Config, deps transports.Deps) (*Transport, error) {
	cfg.dialect = d
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	deps = deps.WithDefaults()
	wlog := transports.WatermillLogger(deps.Logger)
	redact := newRedactor(cfg.DSN)
	connector, err := d.connector(cfg, deps.Logger)
	if err != nil {
		return nil, redact.wrap(fmt.Sprintf("%s: open %s", d, transports.RedactDSN(cfg.DSN)), err)
	}
	connect := newBound(d, "connect_timeout", cfg.ConnectTimeout, cfg.DSN)
	db := stdsql.OpenDB(boundedConnector{Connector: connector, connect: connect})
	db.SetMaxIdleConns(cfg.MaxIdleConns)
	t := &Transport{
		cfg:     cfg,
		dialect: d,
		db:      db,
		logger:  wlog,
		log:     deps.Logger,
		schema:  schema{d: d, prefix: cfg.TablePrefix, batchSize: cfg.BatchSize},
		query:   newBound(d, "query_timeout", cfg.QueryTimeout, cfg.DSN),
		connect: connect,
	}
	if err := t.ping(ctx, connect); err != nil {
		_ = db.Close()
		return nil, redact.wrapOpen(d, cfg.DSN, "connect", err)
	}
	t.subs.ErrClosed, t.subs.Concurrent = errClosed, true
	t.ephemeral.ErrClosed = errClosed
	t.pub = &publisher{t: t}
	t.delay, err = newDelayer(ctx, t, connect)
	if err != nil {
		_ = db.Close()
		return nil, redact.wrapOpen(d, cfg.DSN, "delayed messages table", err)
	}
	return t, nil
}

// connector returns the driver's connector for cfg.DSN. On MySQL the
// connection's read and write timeouts, unless the DSN sets them, are
// query_timeout and a tenth: database/sql gives COMMIT and ROLLBACK no
// context, and go-sql-driver/mysql would wait for their answer for ever;
// the margin lets every other statement end by its context, bounded by
// query_timeout, whose error says so. Its own log
// lines (a broken connection, also returned as an error to the call that
// met it) go to logger at debug level instead of the standard error.
func (d dialect) connector(cfg Config, logger *slog.Logger) (driver.Connector, error) {
	if d == postgres {
		pc, err := pgx.ParseConfig(cfg.DSN)
		if err != nil {
			return nil, err
		}
		return stdlib.GetConnector(*pc), nil
	}
	mc, err := mysql.ParseDSN(cfg.DSN)
	if err != nil {
		return nil, err
	}
	io := cfg.QueryTimeout + cfg.QueryTimeout/10
	if mc.ReadTimeout == 0 {
		mc.ReadTimeout = io
	}
	if mc.WriteTimeout == 0 {
		mc.WriteTimeout = io
	}
	mc.Logger = driverLogger{logger}
	return mysql.NewConnector(mc)
}

// driverLogger is go-sql-driver/mysql's logger of a transport.
type driverLogger struct{ l *slog.Logger }

func (l driverLogger) Print(v ...any) {
	if l.l.Enabled(context.Background(), slog.LevelDebug) {
		l.l.Debug(strings.TrimSpace(fmt.Sprint(v...)), slog.String("driver", "go-sql-driver/mysql"))
	}
}

// ping opens the pool's first connection (within connect_timeout, as every
// connection) and pings the server on it within connect_timeout.
func (t *Transport) ping(ctx context.Context, connect *bound) error {
	conn, err := t.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := connect.start(ctx)
	defer cancel()
	return connect.check(ctx, "ping", conn.PingContext(ctx))
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
// digits and - $ : . _ (it becomes part of a table name). After Close,
// Subscriber fails with an error wrapping [transports.ErrClosed].
func (t *Transport) Subscriber(group string) (message.Subscriber, error) {
	if !validName.MatchString(group) {
		return nil, fmt.Errorf("%s: consumer group %q: only letters, digits and - $ : . _ are allowed", t.dialect, group)
	}
	s, err := t.subs.Add(func() (*groupSubscriber, error) { return newGroupSubscriber(t, group), nil })
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Close stops the delayed messages poller, closes every subscriber the
// transport made, every subscription of SubscribeEphemeral and its
// publisher, then the connection pool. It is safe to call more than once;
// later calls return nil.
func (t *Transport) Close() error {
	// The poller stops first; a later Close finds it stopped.
	t.delay.close()
	first, err := t.subs.CloseAll()
	if !first {
		return nil
	}
	_, ephErr := t.ephemeral.CloseAll()
	return errors.Join(err, ephErr, t.pub.Close(), t.db.Close())
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

// wrapOpen wraps an error of Open's step: one that timed out names its
// address itself; others are given it.
func (r redactor) wrapOpen(d dialect, dsn, step string, err error) error {
	if _, ok := errors.AsType[*timeoutError](err); ok {
		return r.wrap(fmt.Sprintf("%s: open", d), err)
	}
	return r.wrap(fmt.Sprintf("%s: %s %s", d, step, transports.RedactDSN(dsn)), err)
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
