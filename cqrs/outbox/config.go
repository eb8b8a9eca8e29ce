package outbox

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/millrace/millrace/cqrs/eventstore"
)

// Dialect is the SQL database the outbox is kept in.
type Dialect int

const (
	// Postgres is PostgreSQL (through github.com/jackc/pgx/v5/stdlib): the
	// relay wakes on LISTEN/NOTIFY within milliseconds of a commit.
	Postgres Dialect = iota + 1
	// MySQL is MySQL or MariaDB (through github.com/go-sql-driver/mysql):
	// the relay polls.
	MySQL
)

// String names the dialect.
func (d Dialect) String() string {
	switch d {
	case Postgres:
		return "postgres"
	case MySQL:
		return "mysql"
	}
	return fmt.Sprintf("Dialect(%d)", int(d))
}

// Config configures an [Outbox]. Start from [DefaultConfig].
type Config struct {
	// Dialect is the database's; required.
	Dialect Dialect
	// TablePrefix prefixes the outbox's tables: "<prefix>outbox" and, on
	// MySQL, "<prefix>outbox_relay"; default "millrace_".
	TablePrefix string
	// Relay runs the relay in the App (App.Go); default true. Off, the
	// service only writes to the outbox and another one relays.
	Relay bool
	// BatchSize is how many messages the relay moves per transaction;
	// default 500.
	BatchSize int
	// PollInterval is how often the relay looks for messages when nothing
	// wakes it (MySQL always; PostgreSQL when a notification was missed);
	// default 100ms on MySQL, 1s on PostgreSQL.
	PollInterval time.Duration
	// Retention is how long sent messages stay in the table before the
	// cleanup deletes them; default 1h.
	Retention time.Duration
	// CleanupInterval is how often the relay deletes sent messages older
	// than Retention; default 1m.
	CleanupInterval time.Duration
	// CallTimeout bounds every statement of the outbox and the relay, and
	// a relay transaction, so that a database that does not answer fails
	// the call instead of holding it; default 10s.
	CallTimeout time.Duration
	// Upcasters, when set, upcast each message the relay publishes whose
	// message_type has an upcaster, as the event store upcasts its reads
	// (see [eventstore.Upcasters]): a message written by older code as
	// "OrderPlaced.v1" is published as "OrderPlaced.v2". The row in the
	// outbox is not rewritten.
	Upcasters *eventstore.Upcasters
}

// DefaultConfig returns the defaults for dialect d.
func DefaultConfig(d Dialect) Config {
	c := Config{
		Dialect: d, TablePrefix: "millrace_", Relay: true, BatchSize: 500,
		PollInterval: time.Second, Retention: time.Hour, CleanupInterval: time.Minute,
		CallTimeout: 10 * time.Second,
	}
	if d == MySQL {
		c.PollInterval = 100 * time.Millisecond
	}
	return c
}

var validPrefix = regexp.MustCompile(`^[A-Za-z0-9_]{0,40}$`)

// Validate reports every bad field, naming it.
func (c Config) Validate() error {
	var errs []error
	if c.Dialect != Postgres && c.Dialect != MySQL {
		errs = append(errs, fmt.Errorf("outbox: Dialect %v: must be outbox.Postgres or outbox.MySQL", c.Dialect))
	}
	if !validPrefix.MatchString(c.TablePrefix) {
		errs = append(errs, fmt.Errorf("outbox: TablePrefix %q: letters, digits and underscores, at most 40", c.TablePrefix))
	}
	if c.BatchSize < 1 || c.BatchSize > 10000 {
		errs = append(errs, fmt.Errorf("outbox: BatchSize %d: must be between 1 and 10000", c.BatchSize))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"PollInterval", c.PollInterval}, {"Retention", c.Retention}, {"CleanupInterval", c.CleanupInterval}, {"CallTimeout", c.CallTimeout}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("outbox: %s %s: must be greater than 0", d.name, d.v))
		}
	}
	return errors.Join(errs...)
}
