package memory

import (
	"strconv"
	"time"

	"github.com/millrace/millrace"
)

// Config is the memory transport's config section (transport.memory).
//
// Start from DefaultConfig: New does not fill in zero fields, because a zero
// Retention is meaningful.
type Config struct {
	// RedeliveryDelay is how long a nacked message waits before it is
	// delivered again. Each further nack of the same message doubles the
	// wait, up to MaxRedeliveryDelay. Must be greater than 0.
	RedeliveryDelay time.Duration `yaml:"redelivery_delay"`

	// MaxRedeliveryDelay caps the doubling of RedeliveryDelay. Must be at
	// least RedeliveryDelay.
	MaxRedeliveryDelay time.Duration `yaml:"max_redelivery_delay"`

	// Retention is how many of a topic's most recent messages the broker
	// keeps for consumer groups that do not exist yet: a group subscribing
	// to a topic for the first time starts with them. 0 means a new group
	// receives only messages published after it subscribed. Must not be
	// negative.
	Retention int `yaml:"retention"`
}

// DefaultConfig returns the defaults: redeliver after 100ms, doubling up to
// 10s, and retain the last 10000 messages of every topic for new groups.
func DefaultConfig() *Config {
	return &Config{
		RedeliveryDelay:    100 * time.Millisecond,
		MaxRedeliveryDelay: 10 * time.Second,
		Retention:          10000,
	}
}

// Validate checks every field and returns a *millrace.ConfigError for each bad
// one (joined with errors.Join when there are several). Keys are relative to
// the section, for example "redelivery_delay".
func (c *Config) Validate() error {
	var errs []error
	if c.RedeliveryDelay <= 0 {
		errs = append(errs, &millrace.ConfigError{
			Key:     "redelivery_delay",
			Value:   c.RedeliveryDelay.String(),
			Problem: "must be greater than 0",
		})
	}
	if c.MaxRedeliveryDelay < c.RedeliveryDelay || c.MaxRedeliveryDelay <= 0 {
		errs = append(errs, &millrace.ConfigError{
			Key:     "max_redelivery_delay",
			Value:   c.MaxRedeliveryDelay.String(),
			Problem: "must be greater than 0 and at least redelivery_delay (" + c.RedeliveryDelay.String() + ")",
		})
	}
	if c.Retention < 0 {
		errs = append(errs, &millrace.ConfigError{
			Key:     "retention",
			Value:   strconv.Itoa(c.Retention),
			Problem: "must be 0 or greater",
		})
	}
	return millrace.JoinConfigErrors(errs)
}

// redeliveryDelay returns how long a message waits after its nacks-th nack:
// RedeliveryDelay doubled nacks-1 times, capped at MaxRedeliveryDelay.
func (c *Config) redeliveryDelay(nacks int) time.Duration {
	d := c.RedeliveryDelay
	for i := 1; i < nacks && d < c.MaxRedeliveryDelay; i++ {
		if d > c.MaxRedeliveryDelay/2 {
			return c.MaxRedeliveryDelay
		}
		d *= 2
	}
	return min(d, c.MaxRedeliveryDelay)
}
