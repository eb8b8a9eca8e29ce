package projection

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	sqlstore "github.com/millrace/millrace/cqrs/eventstore/sql"
)

// Config configures a [Projector]. Start from [DefaultConfig].
type Config struct {
	// Dialect is the read model database's: sqlstore.Postgres or
	// sqlstore.MySQL; required.
	Dialect sqlstore.Dialect
	// TablePrefix prefixes the checkpoint table, "<prefix>projections";
	// default "millrace_".
	TablePrefix string
	// BatchSize is how many events a projection applies per transaction;
	// default 500.
	BatchSize int
	// PollInterval is how often a caught-up projection looks for new
	// events when nothing wakes it: always on MySQL, and on PostgreSQL
	// when the event store cannot notify or a notification was missed;
	// default 1s with notifications, 10ms without.
	PollInterval time.Duration
	// CallTimeout bounds every transaction of the projector (a batch, a
	// switch), so that a database that does not answer fails the call
	// instead of holding it; default 30s.
	CallTimeout time.Duration
}

// DefaultConfig returns the defaults for dialect d. The poll interval is
// set by [New] from whether the event store notifies.
func DefaultConfig(d sqlstore.Dialect) Config {
	return Config{Dialect: d, TablePrefix: "millrace_", BatchSize: 500, CallTimeout: 30 * time.Second}
}

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,39}$`)

// Validate reports every bad field, naming it.
func (c Config) Validate() error {
	var errs []error
	if c.Dialect != sqlstore.Postgres && c.Dialect != sqlstore.MySQL {
		errs = append(errs, fmt.Errorf("projection: Dialect %v: must be sqlstore.Postgres or sqlstore.MySQL", c.Dialect))
	}
	if c.TablePrefix != "" && !identifier.MatchString(c.TablePrefix) {
		errs = append(errs, fmt.Errorf("projection: TablePrefix %q: a letter or underscore, then letters, digits and underscores, at most 40", c.TablePrefix))
	}
	if c.BatchSize < 1 || c.BatchSize > 10000 {
		errs = append(errs, fmt.Errorf("projection: BatchSize %d: must be between 1 and 10000", c.BatchSize))
	}
	if c.PollInterval < 0 {
		errs = append(errs, fmt.Errorf("projection: PollInterval %s: must be greater than 0 (or 0 for the default)", c.PollInterval))
	}
	if c.CallTimeout <= 0 {
		errs = append(errs, fmt.Errorf("projection: CallTimeout %s: must be greater than 0", c.CallTimeout))
	}
	return errors.Join(errs...)
}
