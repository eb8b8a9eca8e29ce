package middleware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/sony/gobreaker/v2"

	"github.com/millrace/millrace"
)

// ErrCircuitOpen is wrapped, together with [ErrShuttingDown] or the
// context's error, in what a [Breaker] returns when the service begins to
// shut down, or the message's context ends, while the message is held back
// by an open breaker. The handler did not run; the message is nacked and
// never poisoned (see [HeldBack]).
var ErrCircuitOpen = errors.New("circuit breaker open")

// BreakerConfig configures a circuit breaker ([NewBreaker]; config section
// middleware.breaker). Start from [DefaultBreakerConfig].
type BreakerConfig struct {
	// Name names the breaker in logs, in [OnBreakerStateChange] and in the
	// App, which shares one breaker among every handler whose config gives
	// the same name (a breaker per downstream dependency). Empty (default):
	// the name of the first handler the breaker sees a message for
	// ([ConsumerOf]); in the App each handler then has its own.
	Name string `yaml:"name"`
	// ConsecutiveFailures opens the breaker after this many failures in a
	// row (errors that are not failures, see [BreakerFailure], neither
	// count nor break the row); default 5.
	ConsecutiveFailures int `yaml:"consecutive_failures"`
	// FailureRatio, when above 0, also opens the breaker once at least
	// this fraction (0..1] of the messages that completed within the last
	// Interval failed, provided at least MinRequests completed. 0 (default)
	// turns the ratio rule off.
	FailureRatio float64 `yaml:"failure_ratio"`
	// MinRequests is how many messages must have completed within Interval
	// before FailureRatio is applied; default 20.
	MinRequests int `yaml:"min_requests"`
	// Interval is the rolling window over which the closed breaker counts
	// (ten buckets of Interval/10 each, so counts age out gradually);
	// default 1m.
	Interval time.Duration `yaml:"interval"`
	// OpenTimeout is how long the breaker stays open before it becomes
	// half-open and lets trial messages through; default 30s.
	OpenTimeout time.Duration `yaml:"open_timeout"`
	// HalfOpenRequests is how many trial messages a half-open breaker lets
	// through at once; that many successes in a row close it, one failure
	// opens it again. Default 1.
	HalfOpenRequests int `yaml:"half_open_requests"`
}

// DefaultBreakerConfig returns the defaults of [BreakerConfig]: open after
// 5 failures in a row (no ratio rule), half-open after 30s with one trial
// message, counts over a rolling minute.
func DefaultBreakerConfig() BreakerConfig {
	return BreakerConfig{ConsecutiveFailures: 5, MinRequests: 20, Interval: time.Minute, OpenTimeout: 30 * time.Second, HalfOpenRequests: 1}
}

const breakerBuckets = 10

// Validate returns a [millrace.ConfigError] for every bad value, keyed
// relative to the section (consecutive_failures, ...), all at once.
func (c BreakerConfig) Validate() error {
	var errs []error
	if c.ConsecutiveFailures < 1 {
		errs = append(errs, configErr("consecutive_failures", strconv.Itoa(c.ConsecutiveFailures), "must be at least 1"))
	}
	if !(c.FailureRatio >= 0 && c.FailureRatio <= 1) {
		errs = append(errs, configErr("failure_ratio", formatFloat(c.FailureRatio), "must be between 0 (off) and 1"))
	}
	if c.MinRequests < 1 {
		errs = append(errs, configErr("min_requests", strconv.Itoa(c.MinRequests), "must be at least 1"))
	}
	if c.Interval <= 0 {
		errs = append(errs, configErr("interval", c.Interval.String(), "must be greater than 0"))
	}
	if c.OpenTimeout <= 0 {
		errs = append(errs, configErr("open_timeout", c.OpenTimeout.String(), "must be greater than 0"))
	}
	if c.HalfOpenRequests < 1 {
		errs = append(errs, configErr("half_open_requests", strconv.Itoa(c.HalfOpenRequests), "must be at least 1"))
	}
	return millrace.JoinConfigErrors(errs)
}

// isBreakerFailure is the default of [BreakerFailure].
func isBreakerFailure(err error) bool {
	return !millrace.IsPermanent(err) && !errors.Is(err, context.Canceled) && !errors.Is(err, ErrShuttingDown)
}

// Breaker stops feeding a handler whose downstream keeps failing.
// While it is open, and while it is half-open with every trial slot taken,
// messages are neither processed nor failed: each one waits in the
// middleware until the breaker may let a trial through, so the consumer
// pauses (backpressure) and nothing is poisoned because a downstream was
// down. As soon as the service begins to shut down (or the message's
// context ends), a waiting message returns an error wrapping
// [ErrCircuitOpen] and [ErrShuttingDown] (or the context's error), and is
// nacked. Handler errors pass through unchanged; a handler panic is
// recorded (as a failure, by default) and keeps panicking.
//
// One Breaker is one state. Using it in several handlers (calling
// Middleware for each) makes them share it: a breaker per downstream
// rather than per handler.
//
// Written anew over gobreaker v2 rather than using Watermill's
// CircuitBreaker, which is on gobreaker v1 and returns the breaker's error
// as the handler's: every message arriving while it is open fails and is
// retried, delayed or poisoned although nothing is wrong with it.
type Breaker struct {
	cb            *gobreaker.CircuitBreaker[struct{}]
	openTimeout   time.Duration
	logger        *slog.Logger
	onStateChange func(name string, from, to gobreaker.State)

	name   atomic.Pointer[string]
	state  atomic.Int32                  // the state gobreaker last reported
	signal atomic.Pointer[breakerSignal] // replaced (and the old one closed) on every change waiters care about
}

// breakerSignal wakes messages held by the breaker.
type breakerSignal struct {
	// changed is closed when this signal is replaced: the state changed
	// or a half-open trial finished.
	changed chan struct{}
	// openUntil is when an open breaker will let a trial through (zero
	// unless it is open).
	openUntil time.Time
}

// NewBreaker returns a circuit breaker configured by cfg, or the
// configuration's errors.
func NewBreaker(cfg BreakerConfig, opts ...Option) (*Breaker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("breaker: %w", err)
	}
	o := applyOptions(opts)
	isFailure := o.isFailure
	if isFailure == nil {
		isFailure = isBreakerFailure
	}
	c := &Breaker{
		openTimeout:   cfg.OpenTimeout,
		logger:        o.logger,
		onStateChange: o.onStateChange,
	}
	if cfg.Name != "" {
		name := cfg.Name
		c.name.Store(&name)
	}
	c.signal.Store(&breakerSignal{changed: make(chan struct{})})

	ratio := cfg.FailureRatio
	settings := gobreaker.Settings{
		Name:          cfg.Name,
		MaxRequests:   uint32(cfg.HalfOpenRequests),
		Interval:      cfg.Interval,
		BucketPeriod:  max(cfg.Interval/breakerBuckets, 1),
		Timeout:       cfg.OpenTimeout,
		ReadyToTrip:   readyToTrip(uint32(cfg.ConsecutiveFailures), ratio, uint32(cfg.MinRequests)),
		OnStateChange: c.stateChanged,
		IsExcluded: func(err error) bool {
			return err != nil && !isFailure(err)
		},
	}
	c.cb = gobreaker.NewCircuitBreaker[struct{}](settings)
	return c, nil
}

// readyToTrip opens the breaker after consecutive failures in a row, or
// once the failure ratio among at least minRequests completed messages
// reaches ratio (if ratio > 0).
func readyToTrip(consecutive uint32, ratio float64, minRequests uint32) func(gobreaker.Counts) bool {
	return func(c gobreaker.Counts) bool {
		if c.ConsecutiveFailures >= consecutive {
			return true
		}
		done := c.TotalSuccesses + c.TotalFailures
		return ratio > 0 && done >= minRequests && float64(c.TotalFailures) >= ratio*float64(done)
	}
}

// State returns the breaker's state. An open breaker whose OpenTimeout
// has passed reports half-open.
func (c *Breaker) State() gobreaker.State {
	return c.cb.State()
}

// Name returns the breaker's name: Breaker.Name, or the handler name it
// learned from the first message, or "" before that.
func (c *Breaker) Name() string {
	if n := c.name.Load(); n != nil {
		return *n
	}
	return ""
}

// Middleware guards h with the breaker. In the closed state a message
// costs two atomic loads, two clock reads and taking the breaker's lock
// twice, and allocates nothing.
func (c *Breaker) Middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		if c.name.Load() == nil {
			c.learnName(msg.Context())
		}
		for {
			s := c.signal.Load() // before asking, so no change is missed
			produced, ran, err := c.try(h, msg)
			if ran {
				return produced, err
			}
			if err := c.hold(msg.Context(), s, err); err != nil {
				return nil, err
			}
		}
	}
}

// try runs h if the breaker lets it through; ran reports whether it did
// (if not, err is the breaker's refusal).
func (c *Breaker) try(h message.HandlerFunc, msg *message.Message) (produced []*message.Message, ran bool, err error) {
	defer func() {
		// A finished half-open trial may free a slot without changing
		// the state (its error was not a failure): wake the waiters.
		if ran && gobreaker.State(c.state.Load()) == gobreaker.StateHalfOpen {
			c.wake()
		}
	}()
	_, err = c.cb.Execute(func() (struct{}, error) {
		ran = true
		var herr error
		produced, herr = h(msg)
		return struct{}{}, herr
	})
	return produced, ran, err
}

// hold waits until the breaker, which refused a message with refusal
// while s was current, may accept one again. It returns an error only when
// ctx ends first.
func (c *Breaker) hold(ctx context.Context, s *breakerSignal, refusal error) error {
	// Half-open with every trial slot taken: wait for a trial to finish.
	// The timer only guards against a missed wake-up.
	d := c.openTimeout
	if errors.Is(refusal, gobreaker.ErrOpenState) {
		// gobreaker lets a trial through strictly after the timeout.
		d = time.Until(s.openUntil) + time.Nanosecond
		if d <= 0 {
			return nil
		}
	}
	if err := wait(ctx, d, s.changed); err != nil {
		return fmt.Errorf("%w (breaker %q): %w", ErrCircuitOpen, c.Name(), err)
	}
	return nil
}

// stateChanged is gobreaker's OnStateChange; it runs with the breaker's
// lock held.
func (c *Breaker) stateChanged(_ string, from, to gobreaker.State) {
	c.state.Store(int32(to))
	next := &breakerSignal{changed: make(chan struct{})}
	if to == gobreaker.StateOpen {
		// Not before gobreaker's own expiry, which it took from an
		// earlier time.Now.
		next.openUntil = time.Now().Add(c.openTimeout)
	}
	close(c.signal.Swap(next).changed)

	name := c.Name()
	if c.logger != nil {
		c.logger.LogAttrs(context.Background(), slog.LevelWarn, "circuit breaker state changed",
			slog.String("breaker", name), slog.String("from", from.String()), slog.String("to", to.String()))
	}
	if c.onStateChange != nil {
		c.onStateChange(name, from, to)
	}
}

// wake wakes the held messages without a state change.
func (c *Breaker) wake() {
	for {
		old := c.signal.Load()
		next := &breakerSignal{changed: make(chan struct{}), openUntil: old.openUntil}
		if c.signal.CompareAndSwap(old, next) {
			close(old.changed)
			return
		}
	}
}

// learnName names an unnamed breaker after the handler of the message
// being handled.
func (c *Breaker) learnName(ctx context.Context) {
	if name := ConsumerOf(ctx).Handler; name != "" {
		c.name.CompareAndSwap(nil, &name)
	}
}
