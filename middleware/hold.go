package middleware

import (
	"context"
	"errors"
	"time"

	"github.com/millrace/millrace"
)

// ErrShuttingDown is wrapped in what a middleware returns when the service
// began to shut down while the message waited to be handled: held back by an
// open breaker, waiting for the throttle, or between two retries. The
// handler did not run (again); the message is nacked, never retried or
// poisoned (see [HeldBack]), and the broker delivers it again later.
var ErrShuttingDown = errors.New("service shutting down: message handed back")

// HeldBack reports whether err means "not processed now, deliver again
// later" rather than "the handler failed": an open circuit breaker
// ([ErrCircuitOpen]), a duplicate still in flight elsewhere
// ([ErrDuplicateInFlight]), an unreachable dedup store
// ([ErrStoreUnavailable]), the service shutting down ([ErrShuttingDown]),
// or ctx, the message's context, done with err being its error. Such errors
// are not retried, not scheduled for a delayed retry and never poisoned: the
// message is nacked and the broker keeps it.
func HeldBack(ctx context.Context, err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrCircuitOpen) || errors.Is(err, ErrDuplicateInFlight) ||
		errors.Is(err, ErrStoreUnavailable) || errors.Is(err, ErrShuttingDown) {
		return true
	}
	return ctx.Err() != nil && errors.Is(err, ctx.Err())
}

// wait waits until d has passed or wake (when not nil) is closed, and
// returns nil then; it returns early with ctx's error when ctx ends, or
// with [ErrShuttingDown] when the service begins to shut down (see
// [millrace.Consumer.Stopping]). It is the one way the package's middleware
// wait, so that every wait ends when shutdown begins.
func wait(ctx context.Context, d time.Duration, wake <-chan struct{}) error {
	var stopping <-chan struct{}
	if c := millrace.ConsumerFrom(ctx); c != nil {
		stopping = c.Stopping
	}
	select {
	case <-stopping:
		return ErrShuttingDown
	default:
	}
	if d <= 0 && wake == nil {
		return ctx.Err()
	}
	var timeout <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-timeout:
		return nil
	case <-wake:
		return nil
	case <-stopping:
		return ErrShuttingDown
	case <-ctx.Done():
		return ctx.Err()
	}
}
