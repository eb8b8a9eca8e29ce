package middleware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
)

// Retry retries a failed handler at once, in the same delivery, with
// exponential backoff and jitter. Permanent errors (millrace.Permanent,
// decode failures) are not retried, nor are held-back errors (see
// HeldBack); shutdown stops the waiting and returns the context's error, so
// the message is nacked, not poisoned.
//
// Written anew rather than using Watermill's Retry, which builds a backoff
// object for every message: here the success path costs one function call
// and nothing is allocated until a handler fails.
type Retry struct {
	// MaxAttempts is the number of attempts in all, the first included;
	// default 3. 1 disables retrying.
	MaxAttempts int
	// InitialInterval is the wait before the second attempt; default 100ms.
	InitialInterval time.Duration
	// Multiplier grows the wait after every attempt; default 2.
	Multiplier float64
	// MaxInterval caps the wait; default 10s.
	MaxInterval time.Duration
	// Jitter spreads each wait randomly by up to ± this fraction (0..1);
	// default 0.2. Negative disables it.
	Jitter float64
	// Logger receives one line per retry at debug level; nil logs nothing.
	Logger *slog.Logger
}

// SetDefaults fills zero fields with defaults.
func (r *Retry) SetDefaults() {
	if r.MaxAttempts == 0 {
		r.MaxAttempts = 3
	}
	if r.InitialInterval == 0 {
		r.InitialInterval = 100 * time.Millisecond
	}
	if r.Multiplier == 0 {
		r.Multiplier = 2
	}
	if r.MaxInterval == 0 {
		r.MaxInterval = 10 * time.Second
	}
	if r.Jitter == 0 {
		r.Jitter = 0.2
	}
}

// Validate reports the first bad field.
func (r Retry) Validate() error {
	switch {
	case r.MaxAttempts < 1:
		return fmt.Errorf("retry: MaxAttempts %d: must be at least 1", r.MaxAttempts)
	case r.InitialInterval < 0:
		return fmt.Errorf("retry: InitialInterval %s: must not be negative", r.InitialInterval)
	case r.Multiplier < 1:
		return fmt.Errorf("retry: Multiplier %g: must be at least 1", r.Multiplier)
	case r.MaxInterval < r.InitialInterval:
		return fmt.Errorf("retry: MaxInterval %s: must be at least InitialInterval %s", r.MaxInterval, r.InitialInterval)
	case r.Jitter > 1:
		return fmt.Errorf("retry: Jitter %g: must be at most 1", r.Jitter)
	}
	return nil
}

// AttemptsError is the last error of a delivery that was tried Attempts
// times. The poison queue records the count.
type AttemptsError struct {
	Attempts int
	Err      error
}

// Error gives the number of attempts and the last attempt's error.
func (e *AttemptsError) Error() string {
	return fmt.Sprintf("after %d attempts: %v", e.Attempts, e.Err)
}

// Unwrap returns the last attempt's error.
func (e *AttemptsError) Unwrap() error { return e.Err }

// Attempts returns how many attempts err records (1 if none).
func Attempts(err error) int {
	var ae *AttemptsError
	if errors.As(err, &ae) {
		return ae.Attempts
	}
	return 1
}

// Middleware retries h as configured. Call SetDefaults first (or set every
// field).
func (r Retry) Middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		produced, err := h(msg)
		if err == nil {
			return produced, nil
		}
		return r.again(h, msg, err)
	}
}

// again runs the attempts after the first failed one.
func (r Retry) again(h message.HandlerFunc, msg *message.Message, err error) ([]*message.Message, error) {
	ctx := msg.Context()
	wait := r.InitialInterval
	attempt := 1
	for ; attempt < r.MaxAttempts; attempt++ {
		if millrace.IsPermanent(err) || HeldBack(ctx, err) {
			break
		}
		d := r.jittered(wait)
		if r.Logger != nil {
			r.Logger.LogAttrs(ctx, slog.LevelDebug, "retrying handler",
				slog.String("message_id", msg.UUID), slog.Int("attempt", attempt+1),
				slog.Duration("after", d), slog.Any("error", err))
		}
		if !sleep(ctx, d) {
			return nil, fmt.Errorf("retry interrupted: %w (last error: %v)", ctx.Err(), err)
		}
		var produced []*message.Message
		if produced, err = h(msg); err == nil {
			return produced, nil
		}
		wait = time.Duration(float64(wait) * r.Multiplier)
		if wait > r.MaxInterval {
			wait = r.MaxInterval
		}
	}
	if attempt > 1 {
		return nil, &AttemptsError{Attempts: attempt, Err: err}
	}
	return nil, err
}

func (r Retry) jittered(d time.Duration) time.Duration {
	if r.Jitter <= 0 || d <= 0 {
		return d
	}
	spread := float64(d) * r.Jitter
	return time.Duration(float64(d) - spread + rand.Float64()*2*spread)
}

// sleep waits d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
