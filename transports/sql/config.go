package sql

import (
	"regexp"
	"strconv"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/transports"
)

// Config is the section of one SQL transport (transport.postgres or
// transport.mysql). Start from PostgresDefaultConfig or MySQLDefaultConfig.
type Config struct {
	// DSN is the connection string: a pgx URL or key=value string for
	// PostgreSQL, a go-sql-driver/mysql DSN for MySQL/MariaDB. Its password
	// never appears in logs or errors.
	DSN string `yaml:"dsn" millrace:"dsn"`

	// PollInterval is how long a subscription waits before querying again
	// when it found no message, and how often due delayed messages are
	// looked for. Must be greater than 0.
	PollInterval time.Duration `yaml:"poll_interval"`

	// InitialOffset is where a consumer group that has no offset for a
	// topic yet starts, as Kafka's transport.kafka.initial_offset: [Oldest]
	// (every message the topic's table holds; rows are never deleted) or
	// [Newest] (only messages published after the group's first Subscribe
	// or SubscribeInitialize, which App.Prepare calls). Either way the
	// group's offset is then kept in the topic's offsets table, so a group
	// that exists is not affected; its delayed messages are always all
	// delivered. See the package documentation for what "after" means on
	// each database.
	InitialOffset string `yaml:"initial_offset"`

	// BatchSize is how many messages one query reads. The offset of a batch
	// is committed once its messages are acked (or when the first is
	// nacked), so a crash redelivers at most a batch. Must be 1 or more.
	BatchSize int `yaml:"batch_size"`

	// AckDeadline is how long a delivered message may stay unsettled; after
	// it the message is redelivered. The reading transaction stays open
	// meanwhile. Must be greater than 0.
	AckDeadline time.Duration `yaml:"ack_deadline"`

	// ResendInterval is how long a nacked message waits before it is
	// delivered again. Messages behind it in its group wait too: SQL
	// subscriptions deliver a group's messages in order. Must be greater
	// than 0.
	ResendInterval time.Duration `yaml:"resend_interval"`

	// TablePrefix starts the name of every table the transport creates:
	// <prefix><topic>, <prefix>offsets_<topic> and <prefix>delayed. Letters,
	// digits and underscores only, at most 20 characters.
	TablePrefix string `yaml:"table_prefix"`

	// MaxIdleConns is how many idle connections the pool keeps for reuse.
	// database/sql keeps 2 unless told otherwise, so a service publishing
	// from many goroutines closed and opened connections all the time.
	// The number of open connections is not capped: every subscription
	// holds one while it delivers a batch. Must be 1 or more.
	MaxIdleConns int `yaml:"max_idle_conns"`

	// ConnectTimeout bounds opening each connection to the database (TCP,
	// TLS, authentication) and, at [OpenPostgres] and [OpenMySQL], each of
	// the first calls: the ping and the creation of the delayed messages
	// table. A server that accepts connections and never answers (a
	// half-dead host, a wrong port behind a proxy) makes Open fail after
	// it, with an error that names this key, the address and what did not
	// answer. Must be greater than 0.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`

	// QueryTimeout bounds every later call to the database: each Publish
	// (of a [Transport.TxPublisher] too), [Transport.Delay] and
	// [Transport.Browse], whose context often has no deadline (a message's
	// context is [context.Background] unless set; an earlier deadline of
	// the caller's still ends the call sooner), and each statement, BEGIN,
	// COMMIT and ROLLBACK of the subscriptions and of the delayed messages
	// poller, which have none. Errors of a call that timed out name this
	// key; a subscription logs them and queries again after poll_interval.
	// It must exceed what a healthy statement may wait for a lock: on
	// MySQL an insert into a topic waits while a subscription that has
	// caught up with it holds an unsettled message, until that is acked or
	// ack_deadline passes, and the server gives up at
	// innodb_lock_wait_timeout (50s by default); PostgreSQL statements of
	// the transport wait for no such lock. Must be greater than 0.
	QueryTimeout time.Duration `yaml:"query_timeout"`

	// dialect is set by the default constructors so Validate can parse DSN.
	dialect dialect
}

// PostgresDefaultConfig returns the defaults for the postgres kind: a local
// PostgreSQL database "test" as user postgres, new groups starting with the
// oldest message ([Oldest]), polling every 100ms, batches of 100, a 30s ack
// deadline, resend after 1s, tables prefixed "millrace_", 16 idle
// connections kept, 10s to connect and 1m for any later statement (longer
// than MySQL's default lock wait of 50s, so that a lock wait is reported by
// the server, as such, before the transport gives up).
func PostgresDefaultConfig() *Config {
	return defaultConfig(postgres, "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
}

// MySQLDefaultConfig returns the defaults for the mysql kind: a local
// MySQL/MariaDB database "test" as root, with the same tuning as
// PostgresDefaultConfig.
func MySQLDefaultConfig() *Config {
	return defaultConfig(mysqlDialect, "root@tcp(127.0.0.1:3306)/test?parseTime=true")
}

func defaultConfig(d dialect, dsn string) *Config {
	return &Config{
		DSN:            dsn,
		PollInterval:   100 * time.Millisecond,
		InitialOffset:  Oldest,
		BatchSize:      100,
		AckDeadline:    30 * time.Second,
		ResendInterval: time.Second,
		TablePrefix:    "millrace_",
		MaxIdleConns:   16,
		ConnectTimeout: 10 * time.Second,
		QueryTimeout:   time.Minute,
		dialect:        d,
	}
}

// The values of [Config].InitialOffset.
const (
	// Oldest makes a new consumer group start with the oldest message of
	// the topic's table.
	Oldest = "oldest"
	// Newest makes a new consumer group start with the messages published
	// after it first subscribed (or was prepared).
	Newest = "newest"
)

const maxPrefixLen = 20

var validPrefix = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

// Validate checks every field and returns a *millrace.ConfigError for each bad
// one (joined with errors.Join when there are several). Keys are relative to
// the section, for example "poll_interval". DSN values in errors are
// redacted.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, value, problem string) {
		errs = append(errs, &millrace.ConfigError{Key: key, Value: value, Problem: problem})
	}
	if c.DSN == "" {
		bad("dsn", "", "must not be empty")
	} else if err := c.dialect.parseDSN(c.DSN); err != nil {
		bad("dsn", transports.RedactDSN(c.DSN), "is not a valid "+c.dialect.String()+" connection string")
	}
	if c.PollInterval <= 0 {
		bad("poll_interval", c.PollInterval.String(), "must be greater than 0")
	}
	if c.InitialOffset != Oldest && c.InitialOffset != Newest {
		bad("initial_offset", c.InitialOffset, "must be one of: "+Oldest+", "+Newest)
	}
	if c.BatchSize < 1 {
		bad("batch_size", strconv.Itoa(c.BatchSize), "must be 1 or more")
	}
	if c.AckDeadline <= 0 {
		bad("ack_deadline", c.AckDeadline.String(), "must be greater than 0")
	}
	if c.ResendInterval <= 0 {
		bad("resend_interval", c.ResendInterval.String(), "must be greater than 0")
	}
	if c.ConnectTimeout <= 0 {
		bad("connect_timeout", c.ConnectTimeout.String(), "must be greater than 0")
	}
	if c.QueryTimeout <= 0 {
		bad("query_timeout", c.QueryTimeout.String(), "must be greater than 0")
	}
	if c.MaxIdleConns < 1 {
		bad("max_idle_conns", strconv.Itoa(c.MaxIdleConns), "must be 1 or more")
	}
	if !validPrefix.MatchString(c.TablePrefix) || len(c.TablePrefix) > maxPrefixLen {
		bad("table_prefix", c.TablePrefix, "must be 1 to 20 letters, digits or underscores")
	}
	return millrace.JoinConfigErrors(errs)
}

// parseDSN checks dsn without connecting. An unknown dialect (a Config not
// made by a default constructor) accepts anything; Open will tell.
func (d dialect) parseDSN(dsn string) error {
	switch d {
	case postgres:
		_, err := pgx.ParseConfig(dsn)
		return err
	case mysqlDialect:
		_, err := mysql.ParseDSN(dsn)
		return err
	}
	return nil
}
