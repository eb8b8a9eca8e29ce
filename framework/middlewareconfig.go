package framework

import (
	"fmt"
	"strconv"
	"time"

	"github.com/millrace/millrace"
)

// MiddlewareConfig tunes the default middleware stack that every handler
// runs in (config section middleware:). A handler can change its own copy
// with WithMiddleware. The stack, outermost first, and why in that order:
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
type MiddlewareConfig struct {
	// Timeout is the deadline of each handler attempt; 0 disables it;
	// default 1m.
	Timeout time.Duration `yaml:"timeout"`
	// Retry is immediate retrying.
	Retry RetryConfig `yaml:"retry"`
	// DelayedRetry is redelivery after growing delays.
	DelayedRetry DelayedRetryConfig `yaml:"delayed_retry"`
	// Poison is the poison queue (dead letters).
	Poison PoisonConfig `yaml:"poison"`
	// Breaker is the per-handler circuit breaker.
	Breaker BreakerConfig `yaml:"breaker"`
	// Throttle paces each handler.
	Throttle ThrottleConfig `yaml:"throttle"`
	// Dedup is deduplication by idempotency key.
	Dedup DedupConfig `yaml:"dedup"`
}

// RetryConfig configures immediate retries (middleware.Retry).
type RetryConfig struct {
	// MaxAttempts counts all attempts, the first included; 1 disables
	// retrying; default 3.
	MaxAttempts int `yaml:"max_attempts"`
	// InitialInterval is the first wait; default 100ms.
	InitialInterval time.Duration `yaml:"initial_interval"`
	// Multiplier grows each wait; default 2.
	Multiplier float64 `yaml:"multiplier"`
	// MaxInterval caps the wait; default 10s.
	MaxInterval time.Duration `yaml:"max_interval"`
	// Jitter spreads each wait by up to ± this fraction; default 0.2.
	Jitter float64 `yaml:"jitter"`
}

// DelayedRetryConfig configures delayed retries (middleware.DelayedRetry).
type DelayedRetryConfig struct {
	// Enabled switches delayed retries on; default true. On a transport
	// without native delayed delivery it is an error at start.
	Enabled bool `yaml:"enabled"`
	// Delays are the waits of the successive rounds; default [10s, 1m, 5m].
	Delays []time.Duration `yaml:"delays"`
}

// PoisonConfig configures the poison queue (middleware.PoisonQueue).
type PoisonConfig struct {
	// Enabled switches the poison queue on; default true. Off, a message
	// that cannot succeed is nacked and redelivered for ever.
	Enabled bool `yaml:"enabled"`
	// Topic is the poison topic; default "<service.name>.poison".
	Topic string `yaml:"topic"`
}

// BreakerConfig configures the circuit breaker (middleware.Breaker).
type BreakerConfig struct {
	// Enabled switches the breaker on; default true.
	Enabled bool `yaml:"enabled"`
	// Name shares one breaker among every handler with the same name (a
	// breaker per downstream dependency); empty (default) gives each handler
	// its own, named after it. Handlers sharing a name use the settings of
	// the first one started.
	Name string `yaml:"name"`
	// ConsecutiveFailures opens the breaker; default 5.
	ConsecutiveFailures int `yaml:"consecutive_failures"`
	// FailureRatio opens it too when reached over Interval with at least
	// MinRequests; 0 (default) disables the ratio rule.
	FailureRatio float64 `yaml:"failure_ratio"`
	// MinRequests is the ratio rule's minimum; default 20.
	MinRequests int `yaml:"min_requests"`
	// Interval is the ratio rule's rolling window; default 1m.
	Interval time.Duration `yaml:"interval"`
	// OpenTimeout is how long it stays open before trial messages; default 30s.
	OpenTimeout time.Duration `yaml:"open_timeout"`
	// HalfOpenRequests is how many trial messages it lets through; default 1.
	HalfOpenRequests int `yaml:"half_open_requests"`
}

// ThrottleConfig configures the throttle (middleware.Throttle).
type ThrottleConfig struct {
	// Rate is messages per second per handler; 0 (default) disables it.
	Rate float64 `yaml:"rate"`
	// Name shares one token bucket among every handler with the same name;
	// empty (default) gives each handler its own.
	Name string `yaml:"name"`
	// Burst is how many may go at once; default 1.
	Burst int `yaml:"burst"`
}

// DedupConfig configures deduplication (middleware.Dedup).
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
	// Lease is how long an in-flight claim holds; default 30s.
	Lease time.Duration `yaml:"lease"`
	// TTL is how long a processed key is remembered; default 24h.
	TTL time.Duration `yaml:"ttl"`
	// FailOpen runs handlers when the store is unreachable instead of
	// nacking; default false (fail closed).
	FailOpen bool `yaml:"fail_open"`
	// Key chooses the idempotency key: "" (default) is the message id,
	// "metadata:NAME" a metadata entry, "json:FIELD" a top-level payload field.
	Key string `yaml:"key"`
}

// DefaultMiddlewareConfig returns the stack's defaults.
func DefaultMiddlewareConfig() MiddlewareConfig {
	return MiddlewareConfig{
		Timeout:      time.Minute,
		Retry:        RetryConfig{MaxAttempts: 3, InitialInterval: 100 * time.Millisecond, Multiplier: 2, MaxInterval: 10 * time.Second, Jitter: 0.2},
		DelayedRetry: DelayedRetryConfig{Enabled: true, Delays: []time.Duration{10 * time.Second, time.Minute, 5 * time.Minute}},
		Poison:       PoisonConfig{Enabled: true},
		Breaker:      BreakerConfig{Enabled: true, ConsecutiveFailures: 5, MinRequests: 20, Interval: time.Minute, OpenTimeout: 30 * time.Second, HalfOpenRequests: 1},
		Throttle:     ThrottleConfig{Burst: 1},
		Dedup:        DedupConfig{Enabled: true, Store: "memory", Table: "millrace_dedup", MaxKeys: 100000, Lease: 30 * time.Second, TTL: 24 * time.Hour},
	}
}

// validate returns one ConfigError per bad value, keys under prefix.
func (m *MiddlewareConfig) validate(prefix string) []error {
	var errs []error
	bad := func(key, value, problem string) {
		errs = append(errs, &millrace.ConfigError{Key: prefix + "." + key, Value: value, Problem: problem})
	}
	dur := func(d time.Duration) string { return d.String() }
	num := func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
	if m.Timeout < 0 {
		bad("timeout", dur(m.Timeout), "must be 0 (no deadline) or greater")
	}
	r := m.Retry
	if r.MaxAttempts < 1 {
		bad("retry.max_attempts", strconv.Itoa(r.MaxAttempts), "must be at least 1 (1 means no retries)")
	}
	if r.InitialInterval < 0 {
		bad("retry.initial_interval", dur(r.InitialInterval), "must be 0 or greater")
	}
	if r.Multiplier < 1 {
		bad("retry.multiplier", num(r.Multiplier), "must be at least 1")
	}
	if r.MaxInterval < r.InitialInterval {
		bad("retry.max_interval", dur(r.MaxInterval), "must be at least retry.initial_interval ("+dur(r.InitialInterval)+")")
	}
	if r.Jitter < 0 || r.Jitter > 1 {
		bad("retry.jitter", num(r.Jitter), "must be between 0 and 1")
	}
	if m.DelayedRetry.Enabled && len(m.DelayedRetry.Delays) == 0 {
		bad("delayed_retry.delays", "[]", "must list at least one delay, or set delayed_retry.enabled: false")
	}
	for i, d := range m.DelayedRetry.Delays {
		if d <= 0 {
			bad(fmt.Sprintf("delayed_retry.delays[%d]", i), dur(d), "must be greater than 0")
		}
	}
	b := m.Breaker
	if b.ConsecutiveFailures < 1 {
		bad("breaker.consecutive_failures", strconv.Itoa(b.ConsecutiveFailures), "must be at least 1")
	}
	if b.FailureRatio < 0 || b.FailureRatio > 1 {
		bad("breaker.failure_ratio", num(b.FailureRatio), "must be between 0 (off) and 1")
	}
	if b.MinRequests < 1 {
		bad("breaker.min_requests", strconv.Itoa(b.MinRequests), "must be at least 1")
	}
	if b.Interval <= 0 {
		bad("breaker.interval", dur(b.Interval), "must be greater than 0")
	}
	if b.OpenTimeout <= 0 {
		bad("breaker.open_timeout", dur(b.OpenTimeout), "must be greater than 0")
	}
	if b.HalfOpenRequests < 1 {
		bad("breaker.half_open_requests", strconv.Itoa(b.HalfOpenRequests), "must be at least 1")
	}
	if m.Throttle.Rate < 0 {
		bad("throttle.rate", num(m.Throttle.Rate), "must be 0 (off) or greater")
	}
	if m.Throttle.Burst < 1 {
		bad("throttle.burst", strconv.Itoa(m.Throttle.Burst), "must be at least 1")
	}
	dd := m.Dedup
	switch dd.Store {
	case "memory":
		if dd.MaxKeys < 1 {
			bad("dedup.max_keys", strconv.Itoa(dd.MaxKeys), "must be at least 1")
		}
	case "postgres", "mysql", "redis":
		if dd.Enabled && dd.DSN == "" {
			bad("dedup.dsn", "", "is required for dedup.store "+dd.Store)
		}
	default:
		bad("dedup.store", dd.Store, "must be one of: memory, postgres, mysql, redis")
	}
	if dd.Lease <= 0 {
		bad("dedup.lease", dur(dd.Lease), "must be greater than 0")
	}
	if dd.TTL <= 0 {
		bad("dedup.ttl", dur(dd.TTL), "must be greater than 0")
	}
	if dd.Key != "" && !validDedupKey(dd.Key) {
		bad("dedup.key", dd.Key, `must be empty (message id), "metadata:NAME" or "json:FIELD"`)
	}
	return errs
}

func validDedupKey(k string) bool {
	for _, p := range []string{"metadata:", "json:"} {
		if len(k) > len(p) && k[:len(p)] == p {
			return true
		}
	}
	return false
}
