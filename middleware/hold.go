package middleware

import (
	"context"
	"errors"
)

// HeldBack reports whether err means "not processed now, deliver again
// later" rather than "the handler failed": an open circuit breaker
// (ErrCircuitOpen), a duplicate still in flight elsewhere
// (ErrDuplicateInFlight), an unreachable dedup store (ErrStoreUnavailable),
// or the service shutting down (ctx, the message's context, is done and err
// is its error). Such errors are not retried, not scheduled for a delayed
// retry and never poisoned: the message is nacked and the broker keeps it.
func HeldBack(ctx context.Context, err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrCircuitOpen) || errors.Is(err, ErrDuplicateInFlight) || errors.Is(err, ErrStoreUnavailable) {
		return true
	}
	return ctx.Err() != nil && errors.Is(err, ctx.Err())
}
