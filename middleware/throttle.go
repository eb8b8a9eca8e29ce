package middleware

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"golang.org/x/time/rate"
)

// Throttle configures a token-bucket rate limit on handling messages (see
// NewThrottle).
type Throttle struct {
	// Rate is how many messages per second may be handled on average; must
	// be greater than 0. math.Inf(1) means unlimited.
	Rate float64
	// Burst is how many messages may be handled at once after a quiet
	// spell, on top of Rate; default 1.
	Burst int
}

// Validate reports every bad field, naming it.
func (t Throttle) Validate() error {
	var errs []error
	if math.IsNaN(t.Rate) || t.Rate <= 0 {
		errs = append(errs, fmt.Errorf("throttle: Rate %g: must be greater than 0 (messages per second; +Inf for unlimited)", t.Rate))
	}
	if t.Burst < 0 {
		errs = append(errs, fmt.Errorf("throttle: Burst %d: must not be negative", t.Burst))
	}
	return errors.Join(errs...)
}

// Throttler limits how fast messages are handled. A message over the limit
// waits in the middleware for its turn (backpressure: the consumer slows
// down), it is never rejected. If the message's context ends while it
// waits, the handler does not run and the middleware returns the context's
// error, wrapped: the message is nacked, not poisoned (see HeldBack). A
// context deadline is waited for, not anticipated: a message whose turn
// comes after its deadline fails with context.DeadlineExceeded at the
// deadline, so a tight deadline cannot turn the throttle into a busy loop
// of nacks.
//
// A Throttler holds one token bucket: using it in several handlers
// (calling Middleware for each) makes them share the rate.
//
// Written over golang.org/x/time/rate rather than using Watermill's
// Throttle, which has no burst, ignores cancellation (a waiting message
// blocks shutdown) and starts a ticker that is never stopped.
type Throttler struct {
	limiter *rate.Limiter
}

// NewThrottle returns a throttler configured by cfg, zero fields
// defaulted. Its bucket starts full.
func NewThrottle(cfg Throttle) (*Throttler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Burst == 0 {
		cfg.Burst = 1
	}
	limit := rate.Limit(cfg.Rate)
	if math.IsInf(cfg.Rate, 1) {
		limit = rate.Inf
	}
	return &Throttler{limiter: rate.NewLimiter(limit, cfg.Burst)}, nil
}

// Middleware throttles h. A message within the limit costs a lock and a
// clock read and allocates nothing.
func (t *Throttler) Middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		if !t.limiter.Allow() {
			if err := t.wait(msg.Context()); err != nil {
				return nil, err
			}
		}
		return h(msg)
	}
}

// wait takes a token, waiting for it if need be, unless ctx ends first.
func (t *Throttler) wait(ctx context.Context) error {
	r := t.limiter.Reserve()
	d := r.Delay()
	if d == 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		r.Cancel() // give the token back to the messages behind
		return fmt.Errorf("throttle: %w", ctx.Err())
	}
}
