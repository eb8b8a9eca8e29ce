package middleware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/sony/gobreaker/v2"

	"github.com/millrace/millrace"
)

// ErrCircuitOpen is wrapped, together with the context's error, in what a
// circuit breaker returns when the message's context ends while the message
// is held back by an open breaker. The handler did not run; the message is
// nacked and never poisoned (see HeldBack).
var ErrCircuitOpen = errors.New("circuit breaker open")

// Breaker configures a circuit breaker (see NewBreaker). The zero value is
// usable: it opens after 5 consecutive failures and lets one trial message
// through after 30s.
type Breaker struct {
	// Name names the breaker in logs and in OnStateChange. Empty: the name
	// of the first handler the breaker sees a message for (from
	// millrace.DeliveryFrom, else Watermill's handler name). Give a breaker
	// shared by several handlers a name.
	Name string
	// ConsecutiveFailures opens the breaker after this many failures in a
	// row (errors that are not failures, see IsFailure, neither count nor
	// break the row); default 5.
	ConsecutiveFailures uint32
	// FailureRatio, when above 0, also opens the breaker once at least
	// this fraction (0..1] of the messages that completed within the last
	// Interval failed, provided at least MinRequests completed. 0 turns
	// the ratio off.
	FailureRatio float64
	// MinRequests is how many messages must have completed within Interval
	// before FailureRatio is applied; default 10 when FailureRatio is set.
	// Setting it without FailureRatio is an error.
	MinRequests uint32
	// Interval is the rolling window over which the closed breaker counts
	// (ten buckets of Interval/10 each, so counts age out gradually).
	// Default: 1 minute when FailureRatio is set, otherwise 0, which counts
	// from the last state change on.
	Interval time.Duration
	// OpenTimeout is how long the breaker stays open before it becomes
	// half-open and lets trial messages through; default 30s.
	OpenTimeout time.Duration
	// HalfOpenRequests is how many trial messages a half-open breaker lets
	// through at once; that many successes in a row close it, one failure
	// opens it again. Default 1.
	HalfOpenRequests uint32
	// Logger receives every state change at warn level (attributes
	// breaker, from, to); nil logs nothing.
	Logger *slog.Logger
	// OnStateChange, if set, is called on every state change, with the
	// breaker's state lock held: it must return quickly and must not call
	// back into the breaker.
	OnStateChange func(name string, from, to gobreaker.State)
	// IsFailure says whether a (non-nil) handler error counts against the
	// downstream's health; a handler panic reaches it as an error holding
	// the panic value. Default: every error except permanent ones
	// (millrace.Permanent: a malformed message says nothing about the
	// downstream) and context.Canceled (shutdown). Errors it rejects are
	// ignored by the breaker, neither failure nor success.
	IsFailure func(error) bool
}

const (
	defaultBreakerConsecutiveFailures = 5
	defaultBreakerMinRequests         = 10
	defaultBreakerRatioInterval       = time.Minute
	defaultBreakerOpenTimeout         = 30 * time.Second
	defaultBreakerHalfOpenRequests    = 1
	breakerBuckets                    = 10
)

// Validate reports every bad field, naming it.
func (b Breaker) Validate() error {
	var errs []error
	if math.IsNaN(b.FailureRatio) || b.FailureRatio < 0 || b.FailureRatio > 1 {
		errs = append(errs, fmt.Errorf("breaker: FailureRatio %g: must be between 0 (off) and 1", b.FailureRatio))
	}
	if b.MinRequests > 0 && !(b.FailureRatio > 0) {
		errs = append(errs, fmt.Errorf("breaker: MinRequests %d: has no effect without FailureRatio", b.MinRequests))
	}
	if b.Interval < 0 {
		errs = append(errs, fmt.Errorf("breaker: Interval %s: must not be negative", b.Interval))
	}
	if b.OpenTimeout < 0 {
		errs = append(errs, fmt.Errorf("breaker: OpenTimeout %s: must not be negative", b.OpenTimeout))
	}
	return errors.Join(errs...)
}

// setDefaults fills zero fields with defaults.
func (b *Breaker) setDefaults() {
	if b.ConsecutiveFailures == 0 {
		b.ConsecutiveFailures = defaultBreakerConsecutiveFailures
	}
	if b.FailureRatio > 0 {
		if b.MinRequests == 0 {
			b.MinRequests = defaultBreakerMinRequests
		}
		if b.Interval == 0 {
			b.Interval = defaultBreakerRatioInterval
		}
	}
	if b.OpenTimeout == 0 {
		b.OpenTimeout = defaultBreakerOpenTimeout
	}
	if b.HalfOpenRequests == 0 {
		b.HalfOpenRequests = defaultBreakerHalfOpenRequests
	}
	if b.IsFailure == nil {
		b.IsFailure = isBreakerFailure
	}
}

// isBreakerFailure is the default Breaker.IsFailure.
func isBreakerFailure(err error) bool {
	return !millrace.IsPermanent(err) && !errors.Is(err, context.Canceled)
}

// CircuitBreaker stops feeding a handler whose downstream keeps failing.
// While it is open, and while it is half-open with every trial slot taken,
// messages are neither processed nor failed: each one waits in the
// middleware until the breaker may let a trial through, so the consumer
// pauses (backpressure) and nothing is poisoned because a downstream was
// down. Once the message's context ends (shutdown), a waiting message
// returns an error wrapping ErrCircuitOpen and the context's error, and is
// nacked. Handler errors pass through unchanged; a handler panic is
// recorded (as a failure, by default) and keeps panicking.
//
// One CircuitBreaker is one state. Using it in several handlers (calling
// Middleware for each) makes them share it: a breaker per downstream
// rather than per handler.
//
// Written anew over gobreaker v2 rather than using Watermill's
// CircuitBreaker, which is on gobreaker v1 and returns the breaker's error
// as the handler's: every message arriving while it is open fails and is
// retried, delayed or poisoned although nothing is wrong with it.
type CircuitBreaker struct {
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

// NewBreaker returns a circuit breaker configured by cfg, zero fields
// defaulted.
func NewBreaker(cfg Breaker) (*CircuitBreaker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	c := &CircuitBreaker{
		openTimeout:   cfg.OpenTimeout,
		logger:        cfg.Logger,
		onStateChange: cfg.OnStateChange,
	}
	if cfg.Name != "" {
		name := cfg.Name
		c.name.Store(&name)
	}
	c.signal.Store(&breakerSignal{changed: make(chan struct{})})

	settings := gobreaker.Settings{
		Name:          cfg.Name,
		MaxRequests:   cfg.HalfOpenRequests,
		Interval:      cfg.Interval,
		Timeout:       cfg.OpenTimeout,
		ReadyToTrip:   readyToTrip(cfg.ConsecutiveFailures, cfg.FailureRatio, cfg.MinRequests),
		OnStateChange: c.stateChanged,
		IsExcluded: func(err error) bool {
			return err != nil && !cfg.IsFailure(err)
		},
	}
	if cfg.Interval > 0 {
		settings.BucketPeriod = max(cfg.Interval/breakerBuckets, 1)
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
func (c *CircuitBreaker) State() gobreaker.State {
	return c.cb.State()
}

// Name returns the breaker's name: Breaker.Name, or the handler name it
// learned from the first message, or "" before that.
func (c *CircuitBreaker) Name() string {
	if n := c.name.Load(); n != nil {
		return *n
	}
	return ""
}

// Middleware guards h with the breaker. In the closed state a message
// costs two atomic loads, two clock reads and taking the breaker's lock
// twice, and allocates nothing.
func (c *CircuitBreaker) Middleware(h message.HandlerFunc) message.HandlerFunc {
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
func (c *CircuitBreaker) try(h message.HandlerFunc, msg *message.Message) (produced []*message.Message, ran bool, err error) {
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
func (c *CircuitBreaker) hold(ctx context.Context, s *breakerSignal, refusal error) error {
	// Half-open with every trial slot taken: wait for a trial to finish.
	// The timer only guards against a missed wake-up.
	wait := c.openTimeout
	if errors.Is(refusal, gobreaker.ErrOpenState) {
		// gobreaker lets a trial through strictly after the timeout.
		wait = time.Until(s.openUntil) + time.Nanosecond
		if wait <= 0 {
			return nil
		}
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-s.changed:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w (breaker %q): %w", ErrCircuitOpen, c.Name(), ctx.Err())
	}
}

// stateChanged is gobreaker's OnStateChange; it runs with the breaker's
// lock held.
func (c *CircuitBreaker) stateChanged(_ string, from, to gobreaker.State) {
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
func (c *CircuitBreaker) wake() {
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
func (c *CircuitBreaker) learnName(ctx context.Context) {
	var name string
	if d := millrace.DeliveryFrom(ctx); d != nil {
		name = d.Handler
	}
	if name == "" {
		name = message.HandlerNameFromCtx(ctx)
	}
	if name != "" {
		c.name.CompareAndSwap(nil, &name)
	}
}
