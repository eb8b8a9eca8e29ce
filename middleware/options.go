package middleware

import (
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/sony/gobreaker/v2"
)

// Option adjusts a middleware beyond what its config holds: what cannot be
// written in a YAML file, such as a logger or a callback. Every constructor
// of the package ([NewRetry], [NewDelayedRetry], [NewPoisonQueue],
// [NewBreaker], [NewThrottle], [NewDedup]) takes the same options; an option
// that a middleware has no use for (a breaker callback given to [NewRetry])
// is ignored.
type Option func(*options)

type options struct {
	logger        *slog.Logger
	onStateChange func(name string, from, to gobreaker.State)
	isFailure     func(error) bool
	key           func(*message.Message) (string, error)
	onWait        func(time.Duration)
}

func applyOptions(opts []Option) options {
	var o options
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	return o
}

// WithLogger sends the middleware's log lines to logger; without it a
// middleware logs nothing.
func WithLogger(logger *slog.Logger) Option {
	return func(o *options) { o.logger = logger }
}

// OnBreakerStateChange has [NewBreaker]'s breaker call fn on every state
// change, with the breaker's state lock held: fn must return quickly and
// must not call back into the breaker. Metrics use it.
func OnBreakerStateChange(fn func(name string, from, to gobreaker.State)) Option {
	return func(o *options) { o.onStateChange = fn }
}

// BreakerFailure has [NewBreaker]'s breaker count a (non-nil) handler error
// against the downstream's health only when isFailure returns true; a
// handler panic reaches it as an error holding the panic value. The
// default counts every error except permanent ones ([millrace.Permanent]: a
// malformed message says nothing about the downstream), context.Canceled
// and [ErrShuttingDown]. Errors it rejects are ignored by the breaker,
// neither failure nor success.
func BreakerFailure(isFailure func(error) bool) Option {
	return func(o *options) { o.isFailure = isFailure }
}

// DedupKey has [NewDedup]'s middleware take each message's idempotency key
// from key instead of from [DedupConfig.Key]. An error from key is
// returned as the handler's error; mark it [millrace.Permanent] when
// retrying cannot help.
func DedupKey(key func(*message.Message) (string, error)) Option {
	return func(o *options) { o.key = key }
}

// OnThrottleWait has [NewThrottle]'s throttle call fn with how long each
// message waited for its turn (only messages that waited). It runs on the
// handling goroutine and must return quickly. Metrics use it.
func OnThrottleWait(fn func(time.Duration)) Option {
	return func(o *options) { o.onWait = fn }
}
