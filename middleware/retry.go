package middleware

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
)

// RetryConfig configures immediate retries ([NewRetry]; config section
// middleware.retry). Start from [DefaultRetryConfig].
type RetryConfig struct {
	// MaxAttempts is the number of attempts in all, the first included;
	// 1 disables retrying. Default 3.
	MaxAttempts int `yaml:"max_attempts"`
	// InitialInterval is the wait before the second attempt; default 100ms.
	InitialInterval time.Duration `yaml:"initial_interval"`
	// Multiplier grows the wait after every attempt; default 2.
	Multiplier float64 `yaml:"multiplier"`
	// MaxInterval caps the wait; default 10s.
	MaxInterval time.Duration `yaml:"max_interval"`
	// Jitter spreads each wait randomly by up to ± this fraction (0..1);
	// 0 turns it off. Default 0.2.
	Jitter float64 `yaml:"jitter"`
}

// DefaultRetryConfig returns the defaults of [RetryConfig]: 3 attempts,
// waits of 100ms growing twofold up to 10s, ± 20% jitter.
func DefaultRetryConfig() RetryConfig {
	return RetryConfig{MaxAttempts: 3, InitialInterval: 100 * time.Millisecond, Multiplier: 2, MaxInterval: 10 * time.Second, Jitter: 0.2}
}

// Validate returns a [millrace.ConfigError] for every bad value, keyed
// relative to the section (max_attempts, ...), all at once.
func (c RetryConfig) Validate() error {
	var errs []error
	if c.MaxAttempts < 1 {
		errs = append(errs, configErr("max_attempts", strconv.Itoa(c.MaxAttempts), "must be at least 1 (1 means no retries)"))
	}
	if c.InitialInterval < 0 {
		errs = append(errs, configErr("initial_interval", c.InitialInterval.String(), "must be 0 or greater"))
	}
	if !(c.Multiplier >= 1) || math.IsInf(c.Multiplier, 1) {
		errs = append(errs, configErr("multiplier", formatFloat(c.Multiplier), "must be a number of at least 1"))
	}
	if c.MaxInterval < c.InitialInterval {
		errs = append(errs, configErr("max_interval", c.MaxInterval.String(), "must be at least initial_interval ("+c.InitialInterval.String()+")"))
	}
	if !(c.Jitter >= 0 && c.Jitter <= 1) {
		errs = append(errs, configErr("jitter", formatFloat(c.Jitter), "must be between 0 (off) and 1"))
	}
	return millrace.JoinConfigErrors(errs)
}

// Retry retries a failed handler at once, in the same delivery, with
// exponential backoff and jitter. Permanent errors ([millrace.Permanent],
// decode failures) are not retried, nor are held-back errors (see
// [HeldBack]). The wait between attempts ends when the message's context
// ends or the service begins to shut down; the message is then handed back
// (nacked) with an error that is held back, not poisoned.
//
// Written anew rather than using Watermill's Retry, which builds a backoff
// object for every message: here the success path costs one function call
// and nothing is allocated until a handler fails.
type Retry struct {
	cfg    RetryConfig
	logger *slog.Logger
}

// NewRetry returns immediate retries configured by cfg, or the
// configuration's errors ([RetryConfig.Validate]).
func NewRetry(cfg RetryConfig, opts ...Option) (*Retry, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("retry: %w", err)
	}
	o := applyOptions(opts)
	return &Retry{cfg: cfg, logger: o.logger}, nil
}

// AttemptsError is the last error of a delivery that was tried Attempts
// times. The poison queue records the count.
type AttemptsError struct {
	// Attempts is how many attempts were made.
	Attempts int
	// Err is the last attempt's error.
	Err error
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

// Middleware retries h as configured.
func (r *Retry) Middleware(h message.HandlerFunc) message.HandlerFunc {
	if r.cfg.MaxAttempts <= 1 {
		return h
	}
	return func(msg *message.Message) ([]*message.Message, error) {
		produced, err := h(msg)
		if err == nil {
			return produced, nil
		}
		return r.again(h, msg, err)
	}
}

// again runs the attempts after the first failed one.
func (r *Retry) again(h message.HandlerFunc, msg *message.Message, err error) ([]*message.Message, error) {
	ctx := msg.Context()
	interval := r.cfg.InitialInterval
	attempt := 1
	for ; attempt < r.cfg.MaxAttempts; attempt++ {
		if millrace.IsPermanent(err) || HeldBack(ctx, err) {
			break
		}
		d := r.jittered(interval)
		if r.logger != nil && r.logger.Enabled(ctx, slog.LevelDebug) {
			r.logger.LogAttrs(ctx, slog.LevelDebug, "retrying handler",
				slog.String("handler", ConsumerOf(ctx).Handler), slog.String("message_id", msg.UUID),
				slog.Int("attempt", attempt+1), slog.Duration("after", d), slog.Any("error", err))
		}
		if werr := wait(ctx, d, nil); werr != nil {
			return nil, fmt.Errorf("retry interrupted: %w (last error: %v)", werr, err)
		}
		var produced []*message.Message
		if produced, err = h(msg); err == nil {
			return produced, nil
		}
		// Compared before converting: a product past the largest
		// Duration would convert to a negative wait (no wait at all).
		if next := float64(interval) * r.cfg.Multiplier; next < float64(r.cfg.MaxInterval) {
			interval = time.Duration(next)
		} else {
			interval = r.cfg.MaxInterval
		}
	}
	if attempt > 1 {
		return nil, &AttemptsError{Attempts: attempt, Err: err}
	}
	return nil, err
}

func (r *Retry) jittered(d time.Duration) time.Duration {
	if r.cfg.Jitter <= 0 || d <= 0 {
		return d
	}
	spread := float64(d) * r.cfg.Jitter
	return time.Duration(float64(d) - spread + rand.Float64()*2*spread)
}
