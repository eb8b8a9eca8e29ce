package framework

import (
	"strconv"
	"time"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/middleware"
)

// MiddlewareConfig tunes the default middleware stack that every handler
// runs in (config section middleware:). Each part's settings are the
// middleware's own config type (package middleware), so they have one set
// of defaults and one validation; a handler can change its own copy with
// [WithMiddleware]. The stack, outermost first, and why in that order:
//
//  1. correlation: every message has a correlation id before anything else
//     runs, so even poisoned copies and delayed retries carry it;
//  2. poison queue: takes whatever error is left after every retry below it;
//  3. delayed retry: takes the errors immediate retries could not fix, and
//     schedules a redelivery instead of blocking the consumer;
//  4. circuit breaker: counts each message's outcome after immediate
//     retries, and holds messages back while open (never poisons them);
//  5. throttle: paces calls into the handler;
//  6. deduplication: claims the idempotency key around all attempts of one
//     delivery, and records it only when an attempt succeeded;
//  7. immediate retries with backoff;
//  8. timeout: a fresh deadline for each attempt;
//  9. recoverer: a panic becomes an error right at the handler, so it is
//     retried and poisoned like any failure.
//
// The settings of a part that is switched off (enabled: false) are not
// checked.
type MiddlewareConfig struct {
	// Timeout is the deadline of each handler attempt ([middleware.Timeout]);
	// 0 disables it; default 1m.
	Timeout time.Duration `yaml:"timeout"`
	// Retry is immediate retrying; max_attempts 1 switches it off.
	Retry middleware.RetryConfig `yaml:"retry"`
	// DelayedRetry is redelivery after growing delays.
	DelayedRetry DelayedRetryConfig `yaml:"delayed_retry"`
	// Poison is the poison queue (dead letters).
	Poison PoisonConfig `yaml:"poison"`
	// Breaker is the per-handler circuit breaker.
	Breaker BreakerConfig `yaml:"breaker"`
	// Throttle paces each handler; rate 0 (default) switches it off.
	Throttle middleware.ThrottleConfig `yaml:"throttle"`
	// Dedup is deduplication by idempotency key, and its store.
	Dedup DedupConfig `yaml:"dedup"`
}

// DelayedRetryConfig switches delayed retries ([middleware.DelayedRetry])
// on or off and configures them.
type DelayedRetryConfig struct {
	// Enabled switches delayed retries on; default true. On a transport
	// without native delayed delivery it is an error at start.
	Enabled                       bool `yaml:"enabled"`
	middleware.DelayedRetryConfig `yaml:",inline"`
}

// PoisonConfig switches the poison queue ([middleware.PoisonQueue]) on or
// off and configures it.
type PoisonConfig struct {
	// Enabled switches the poison queue on; default true. Off, a message
	// that cannot succeed is nacked and redelivered for ever.
	Enabled                 bool `yaml:"enabled"`
	middleware.PoisonConfig `yaml:",inline"`
}

// BreakerConfig switches the circuit breaker ([middleware.Breaker]) on or
// off and configures it. Its name shares one breaker among every handler
// with that name (a breaker per downstream dependency); handlers sharing a
// name use the settings of the first one started.
type BreakerConfig struct {
	// Enabled switches the breaker on; default true.
	Enabled                  bool `yaml:"enabled"`
	middleware.BreakerConfig `yaml:",inline"`
}

// DedupConfig switches deduplication ([middleware.Dedup]) on or off,
// chooses its store and configures it.
type DedupConfig struct {
	// Enabled switches deduplication on; default true.
	Enabled bool `yaml:"enabled"`
	// Store is memory (default), postgres, mysql or redis.
	Store string `yaml:"store"`
	// DSN connects to the store (not memory): a PostgreSQL or MySQL DSN, or
	// a redis:// URL.
	DSN string `yaml:"dsn" millrace:"dsn"`
	// Table is the SQL store's table, or the Redis key prefix; default
	// millrace_dedup.
	Table string `yaml:"table"`
	// MaxKeys bounds the memory store; default 100000.
	MaxKeys int `yaml:"max_keys"`
	// ConnectTimeout bounds connecting to the store at start, with its
	// first query, and every call to it afterwards (not memory); default
	// 10s. A store that does not answer in time fails the start.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`

	middleware.DedupConfig `yaml:",inline"`
}

// DefaultMiddlewareConfig returns the stack's defaults: those of each
// middleware's config ([middleware.DefaultRetryConfig], ...), every part
// on but the throttle, a 1m timeout, and dedup in memory.
func DefaultMiddlewareConfig() MiddlewareConfig {
	return MiddlewareConfig{
		Timeout:      time.Minute,
		Retry:        middleware.DefaultRetryConfig(),
		DelayedRetry: DelayedRetryConfig{Enabled: true, DelayedRetryConfig: middleware.DefaultDelayedRetryConfig()},
		Poison:       PoisonConfig{Enabled: true, PoisonConfig: middleware.DefaultPoisonConfig()},
		Breaker:      BreakerConfig{Enabled: true, BreakerConfig: middleware.DefaultBreakerConfig()},
		Throttle:     middleware.DefaultThrottleConfig(),
		Dedup: DedupConfig{
			Enabled: true, Store: "memory", Table: "millrace_dedup", MaxKeys: 100000, ConnectTimeout: 10 * time.Second,
			DedupConfig: middleware.DefaultDedupConfig(),
		},
	}
}

// validate returns one ConfigError per bad value, keys under prefix.
func (m *MiddlewareConfig) validate(prefix string) []error {
	var errs []error
	section := func(key string, err error) {
		if err != nil {
			errs = append(errs, splitErrors(millrace.PrefixConfigKeys(prefix+"."+key, err))...)
		}
	}
	if m.Timeout < 0 {
		errs = append(errs, &millrace.ConfigError{Key: prefix + ".timeout", Value: m.Timeout.String(), Problem: "must be 0 (no deadline) or greater"})
	}
	section("retry", m.Retry.Validate())
	if m.DelayedRetry.Enabled {
		section("delayed_retry", m.DelayedRetry.Validate())
	}
	if m.Poison.Enabled {
		section("poison", m.Poison.Validate())
	}
	if m.Breaker.Enabled {
		section("breaker", m.Breaker.Validate())
	}
	section("throttle", m.Throttle.Validate())
	if m.Dedup.Enabled {
		section("dedup", m.Dedup.validate())
	}
	return errs
}

// validate checks the store settings and the middleware's own.
func (d DedupConfig) validate() error {
	var errs []error
	bad := func(key, value, problem string) {
		errs = append(errs, &millrace.ConfigError{Key: key, Value: value, Problem: problem})
	}
	switch d.Store {
	case "memory":
		if d.MaxKeys < 1 {
			bad("max_keys", strconv.Itoa(d.MaxKeys), "must be at least 1")
		}
	case "postgres", "mysql", "redis":
		if d.DSN == "" {
			bad("dsn", "", "is required for dedup.store "+d.Store)
		}
	default:
		bad("store", d.Store, "must be one of: memory, postgres, mysql, redis")
	}
	if d.ConnectTimeout <= 0 {
		bad("connect_timeout", d.ConnectTimeout.String(), "must be greater than 0")
	}
	if err := d.DedupConfig.Validate(); err != nil {
		errs = append(errs, splitErrors(err)...)
	}
	return millrace.JoinConfigErrors(errs)
}

// splitErrors returns the errors that err joins (err itself if it joins
// none, nothing for nil).
func splitErrors(err error) []error {
	if err == nil {
		return nil
	}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range joined.Unwrap() {
			out = append(out, splitErrors(e)...)
		}
		return out
	}
	return []error{err}
}
