package middleware

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"golang.org/x/time/rate"

	"github.com/millrace/millrace"
)

// ThrottleConfig configures a token-bucket rate limit ([NewThrottle];
// config section middleware.throttle). Start from [DefaultThrottleConfig].
type ThrottleConfig struct {
	// Rate is how many messages per second may be handled on average;
	// 0 (default) means no limit: the App then installs no throttle.
	Rate float64 `yaml:"rate"`
	// Name shares one token bucket among every handler of an App whose
	// config gives the same name; empty (default) gives each handler its
	// own.
	Name string `yaml:"name"`
	// Burst is how many messages may be handled at once after a quiet
	// spell, on top of Rate; default 1.
	Burst int `yaml:"burst"`
}

// DefaultThrottleConfig returns the defaults of [ThrottleConfig]: no limit,
// burst 1.
func DefaultThrottleConfig() ThrottleConfig { return ThrottleConfig{Burst: 1} }

// Validate returns a [millrace.ConfigError] for every bad value, keyed
// relative to the section (rate, burst), all at once.
func (c ThrottleConfig) Validate() error {
	var errs []error
	if !(c.Rate >= 0) {
		errs = append(errs, configErr("rate", formatFloat(c.Rate), "must be 0 (no limit) or greater, in messages per second"))
	}
	if c.Burst < 1 {
		errs = append(errs, configErr("burst", strconv.Itoa(c.Burst), "must be at least 1"))
	}
	return millrace.JoinConfigErrors(errs)
}

// Throttle limits how fast messages are handled. A message over the limit
// waits in the middleware for its turn (backpressure: the consumer slows
// down), it is never rejected. If the service begins to shut down, or the
// message's context ends, while it waits, the handler does not run and the
// middleware returns [ErrShuttingDown] or the context's error, wrapped: the
// message is nacked, not poisoned (see [HeldBack]). A context deadline is
// waited for, not anticipated: a message whose turn comes after its
// deadline fails with context.DeadlineExceeded at the deadline, so a tight
// deadline cannot turn the throttle into a busy loop of nacks.
//
// A Throttle holds one token bucket: using it in several handlers
// (calling Middleware for each) makes them share the rate.
//
// Written over golang.org/x/time/rate rather than using Watermill's
// Throttle, which has no burst, ignores cancellation (a waiting message
// blocks shutdown) and starts a ticker that is never stopped.
type Throttle struct {
	limiter *rate.Limiter
	onWait  func(time.Duration)
}

// NewThrottle returns a throttle configured by cfg, or the configuration's
// errors. Its bucket starts full.
func NewThrottle(cfg ThrottleConfig, opts ...Option) (*Throttle, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("throttle: %w", err)
	}
	limit := rate.Limit(cfg.Rate)
	if cfg.Rate == 0 || math.IsInf(cfg.Rate, 1) {
		limit = rate.Inf
	}
	o := applyOptions(opts)
	return &Throttle{limiter: rate.NewLimiter(limit, cfg.Burst), onWait: o.onWait}, nil
}

// Middleware throttles h. A message within the limit costs a lock and a
// clock read and allocates nothing.
func (t *Throttle) Middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		if !t.limiter.Allow() {
			if err := t.take(msg.Context()); err != nil {
				return nil, err
			}
		}
		return h(msg)
	}
}

// take takes a token, waiting for it if need be, unless ctx ends or the
// service begins to shut down first.
func (t *Throttle) take(ctx context.Context) error {
	r := t.limiter.Reserve()
	d := r.Delay()
	if d == 0 {
		return nil
	}
	start := time.Now()
	err := wait(ctx, d, nil)
	if t.onWait != nil {
		t.onWait(time.Since(start))
	}
	if err != nil {
		r.Cancel() // give the token back to the messages behind
		return fmt.Errorf("throttle: %w", err)
	}
	return nil
}
