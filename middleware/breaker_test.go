package middleware_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/sony/gobreaker/v2"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/middleware"
)

var errDown = errors.New("downstream unavailable")

// downstream is a handler whose health the test switches.
type downstream struct {
	mu      sync.Mutex
	healthy bool
	calls   int
}

func (d *downstream) handle(*message.Message) ([]*message.Message, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	if !d.healthy {
		return nil, errDown
	}
	return nil, nil
}

func (d *downstream) setHealthy(ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.healthy = ok
}

func (d *downstream) callCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls
}

func breakerMsg(ctx context.Context) *message.Message {
	msg := message.NewMessage("m", nil)
	msg.SetContext(ctx)
	return msg
}

func newBreaker(t *testing.T, cfg middleware.BreakerConfig, opts ...middleware.Option) *middleware.Breaker {
	t.Helper()
	cb, err := middleware.NewBreaker(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return cb
}

// breakerConfig returns DefaultBreakerConfig with ConsecutiveFailures
// failures and, unless openTimeout is 0, OpenTimeout openTimeout.
func breakerConfig(failures int, openTimeout time.Duration) middleware.BreakerConfig {
	cfg := middleware.DefaultBreakerConfig()
	cfg.ConsecutiveFailures = failures
	if openTimeout != 0 {
		cfg.OpenTimeout = openTimeout
	}
	return cfg
}

// tripBreaker fails n messages through h.
func tripBreaker(t *testing.T, h message.HandlerFunc, n int) {
	t.Helper()
	for range n {
		if _, err := h(breakerMsg(t.Context())); !errors.Is(err, errDown) {
			t.Fatalf("tripping: got %v, want %v", err, errDown)
		}
	}
}

// heldResult is what a message handled in the background ended with.
type heldResult struct {
	err error
	at  time.Duration // since the start of the test
}

// handleInBackground handles n messages concurrently and returns a
// function that waits for their results.
func handleInBackground(ctx context.Context, h message.HandlerFunc, n int) func() []heldResult {
	start := time.Now()
	results := make([]heldResult, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, err := h(breakerMsg(ctx))
			results[i] = heldResult{err: err, at: time.Since(start)}
		})
	}
	return func() []heldResult {
		wg.Wait()
		return results
	}
}

func TestBreaker_OpensAfterConsecutiveFailures(t *testing.T) {
	for _, tc := range []struct {
		configured int // 0: DefaultBreakerConfig's
		want       int
	}{{1, 1}, {3, 3}, {0, 5}} {
		t.Run(fmt.Sprint(tc.configured), func(t *testing.T) {
			cfg := middleware.DefaultBreakerConfig()
			if tc.configured != 0 {
				cfg.ConsecutiveFailures = tc.configured
			}
			cb := newBreaker(t, cfg)
			h := cb.Middleware((&downstream{}).handle)
			tripBreaker(t, h, tc.want-1)
			if got := cb.State(); got != gobreaker.StateClosed {
				t.Fatalf("after %d failures: state %v, want closed", tc.want-1, got)
			}
			tripBreaker(t, h, 1)
			if got := cb.State(); got != gobreaker.StateOpen {
				t.Fatalf("after %d failures: state %v, want open", tc.want, got)
			}
		})
	}
}

func TestBreaker_HoldsMessagesWhileOpenThenProcessesThem(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		down := &downstream{}
		cb := newBreaker(t, breakerConfig(2, 10*time.Second))
		h := cb.Middleware(down.handle)
		tripBreaker(t, h, 2)
		down.setHealthy(true)

		wait := handleInBackground(t.Context(), h, 3)
		synctest.Wait()
		if got := down.callCount(); got != 2 {
			t.Fatalf("handler called %d times while open, want 2 (the tripping ones)", got)
		}
		time.Sleep(10*time.Second - time.Millisecond)
		synctest.Wait()
		if got := down.callCount(); got != 2 {
			t.Fatalf("handler called %d times before OpenTimeout, want 2", got)
		}

		for i, r := range wait() {
			if r.err != nil {
				t.Errorf("held message %d ended with %v, want nil (it must not be poisoned)", i, r.err)
			}
			if r.at < 10*time.Second || r.at > 10*time.Second+time.Millisecond {
				t.Errorf("held message %d processed after %v, want just after the 10s OpenTimeout", i, r.at)
			}
		}
		if got := down.callCount(); got != 5 {
			t.Errorf("handler called %d times, want 5", got)
		}
		if got := cb.State(); got != gobreaker.StateClosed {
			t.Errorf("state %v after a successful trial, want closed", got)
		}
	})
}

func TestBreaker_FailedTrialReopens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		down := &downstream{}
		cb := newBreaker(t, breakerConfig(1, 10*time.Second))
		h := cb.Middleware(down.handle)
		tripBreaker(t, h, 1)

		// Two held messages: one becomes the trial and fails, the other
		// waits for the next OpenTimeout.
		wait := handleInBackground(t.Context(), h, 2)
		time.Sleep(10*time.Second + time.Millisecond)
		synctest.Wait()
		if got := down.callCount(); got != 2 {
			t.Fatalf("handler called %d times, want 2 (trip + one trial)", got)
		}
		if got := cb.State(); got != gobreaker.StateOpen {
			t.Fatalf("state %v after a failed trial, want open", got)
		}
		down.setHealthy(true)

		var failed, ok int
		for _, r := range wait() {
			switch {
			case errors.Is(r.err, errDown) && r.at > 10*time.Second && r.at < 11*time.Second:
				failed++ // the handler's error passes through unchanged
			case r.err == nil && r.at > 20*time.Second && r.at < 21*time.Second:
				ok++
			default:
				t.Errorf("unexpected result %v after %v", r.err, r.at)
			}
		}
		if failed != 1 || ok != 1 {
			t.Errorf("got %d failed trials and %d successes, want 1 and 1", failed, ok)
		}
		if got := cb.State(); got != gobreaker.StateClosed {
			t.Errorf("state %v, want closed", got)
		}
	})
}

func TestBreaker_IgnoredErrorsDoNotTrip(t *testing.T) {
	for _, ignored := range []error{
		millrace.Permanent(errors.New("malformed")),
		fmt.Errorf("decode: %w", millrace.Permanent(errors.New("malformed"))),
		context.Canceled,
		fmt.Errorf("shutting down: %w", context.Canceled),
		middleware.ErrShuttingDown,
		fmt.Errorf("retry interrupted: %w", middleware.ErrShuttingDown),
	} {
		t.Run(ignored.Error(), func(t *testing.T) {
			cb := newBreaker(t, breakerConfig(2, 0))
			h := cb.Middleware(func(*message.Message) ([]*message.Message, error) { return nil, ignored })
			for range 10 {
				if _, err := h(breakerMsg(t.Context())); err != ignored {
					t.Fatalf("got %v, want the handler's error unchanged", err)
				}
			}
			if got := cb.State(); got != gobreaker.StateClosed {
				t.Errorf("state %v, want closed", got)
			}
		})
	}
}

func TestBreaker_IgnoredErrorsDoNotBreakTheRow(t *testing.T) {
	errs := []error{errDown, millrace.Permanent(errors.New("malformed")), errDown}
	cb := newBreaker(t, breakerConfig(2, 0))
	h := cb.Middleware(func(*message.Message) ([]*message.Message, error) {
		err := errs[0]
		errs = errs[1:]
		return nil, err
	})
	for range 3 {
		_, _ = h(breakerMsg(t.Context()))
	}
	if got := cb.State(); got != gobreaker.StateOpen {
		t.Errorf("state %v, want open: a permanent error between two failures neither counts nor resets", got)
	}
}

func TestBreaker_IgnoredTrialErrorFreesTheSlotAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		next := []error{errDown, millrace.Permanent(errors.New("malformed")), nil}
		cb := newBreaker(t, breakerConfig(1, 10*time.Second))
		h := cb.Middleware(func(*message.Message) ([]*message.Message, error) {
			mu.Lock()
			defer mu.Unlock()
			err := next[0]
			next = next[1:]
			return nil, err
		})
		if _, err := h(breakerMsg(t.Context())); !errors.Is(err, errDown) {
			t.Fatal(err)
		}

		// The first trial says nothing about the downstream; the second
		// held message takes its slot without waiting for another timeout.
		results := handleInBackground(t.Context(), h, 2)()
		var permanent, ok int
		for _, r := range results {
			if r.at > 10*time.Second+time.Millisecond {
				t.Errorf("message done after %v, want just after 10s", r.at)
			}
			switch {
			case millrace.IsPermanent(r.err):
				permanent++
			case r.err == nil:
				ok++
			}
		}
		if permanent != 1 || ok != 1 {
			t.Errorf("results %+v, want one permanent error and one success", results)
		}
		if got := cb.State(); got != gobreaker.StateClosed {
			t.Errorf("state %v, want closed", got)
		}
	})
}

func TestBreaker_ConcurrentFlappingDownstreamNeverHangs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		down := &downstream{}
		cfg := breakerConfig(3, time.Second)
		cfg.HalfOpenRequests = 3
		cb := newBreaker(t, cfg)
		h := cb.Middleware(func(msg *message.Message) ([]*message.Message, error) {
			time.Sleep(100 * time.Millisecond) // the downstream takes a while
			return down.handle(msg)
		})
		var wg sync.WaitGroup
		wg.Go(func() {
			for i := range 10 {
				down.setHealthy(i%2 == 1)
				time.Sleep(1500 * time.Millisecond)
			}
			down.setHealthy(true)
		})
		end := time.Now().Add(20 * time.Second)
		var mu sync.Mutex
		var ok, failed int
		for range 20 { // consumers, each handling one message at a time
			wg.Go(func() {
				for time.Now().Before(end) {
					_, err := h(breakerMsg(t.Context()))
					mu.Lock()
					switch {
					case err == nil:
						ok++
					case errors.Is(err, errDown):
						failed++
					default:
						t.Errorf("unexpected error %v", err)
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		// While it is down, the breaker lets 3 failures and then 3 trials a
		// second through: far fewer failures than successes.
		if ok == 0 || failed == 0 || failed*10 > ok {
			t.Errorf("%d successes, %d failures", ok, failed)
		}
		if got := cb.State(); got != gobreaker.StateClosed {
			t.Errorf("state %v, want closed", got)
		}
		t.Logf("%d successes, %d failures", ok, failed)
	})
}

func TestBreaker_CustomIsFailure(t *testing.T) {
	cb := newBreaker(t, breakerConfig(1, 0),
		middleware.BreakerFailure(func(err error) bool { return !errors.Is(err, errDown) }))
	h := cb.Middleware((&downstream{}).handle)
	tripBreaker(t, h, 3)
	if got := cb.State(); got != gobreaker.StateClosed {
		t.Errorf("state %v, want closed", got)
	}
}

func TestBreaker_CancelWhileHeldIsErrCircuitOpen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		down := &downstream{}
		cfg := breakerConfig(1, 0)
		cfg.Name = "payments"
		cb := newBreaker(t, cfg)
		h := cb.Middleware(down.handle)
		tripBreaker(t, h, 1)

		ctx, cancel := context.WithCancel(t.Context())
		wait := handleInBackground(ctx, h, 1)
		time.Sleep(time.Second)
		cancel()
		r := wait()[0]
		if !errors.Is(r.err, middleware.ErrCircuitOpen) || !errors.Is(r.err, context.Canceled) {
			t.Fatalf("got %v, want ErrCircuitOpen and context.Canceled", r.err)
		}
		if !strings.Contains(r.err.Error(), `"payments"`) {
			t.Errorf("error %q does not name the breaker", r.err)
		}
		if !middleware.HeldBack(ctx, r.err) {
			t.Errorf("HeldBack(%v) = false, want true (never poisoned)", r.err)
		}
		if r.at != time.Second {
			t.Errorf("returned after %v, want at once on cancel (1s)", r.at)
		}
		if got := down.callCount(); got != 1 {
			t.Errorf("handler called %d times, want 1 (the tripping one)", got)
		}
	})
}

func TestBreaker_StoppingHandsBackHeldMessages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		down := &downstream{}
		cfg := breakerConfig(1, 0) // open for the default 30s
		cfg.Name = "payments"
		cb := newBreaker(t, cfg)
		h := cb.Middleware(down.handle)
		tripBreaker(t, h, 1)
		down.setHealthy(true)

		stopping := make(chan struct{})
		ctx := millrace.WithConsumer(t.Context(), &millrace.Consumer{Handler: "charge", Stopping: stopping})
		wait := handleInBackground(ctx, h, 2)
		time.Sleep(time.Second)
		close(stopping)
		for i, r := range wait() {
			if !errors.Is(r.err, middleware.ErrShuttingDown) || !errors.Is(r.err, middleware.ErrCircuitOpen) {
				t.Errorf("held message %d: got %v, want ErrShuttingDown and ErrCircuitOpen", i, r.err)
			}
			if !middleware.HeldBack(ctx, r.err) {
				t.Errorf("HeldBack(%v) = false, want true (nacked, never poisoned)", r.err)
			}
			if r.err != nil && !strings.Contains(r.err.Error(), `"payments"`) {
				t.Errorf("error %q does not name the breaker", r.err)
			}
			if r.at != time.Second {
				t.Errorf("held message %d returned after %v, want at once when stopping closed (1s)", i, r.at)
			}
		}

		// A message that arrives once shutdown began is not held at all.
		start := time.Now()
		if _, err := h(breakerMsg(ctx)); !errors.Is(err, middleware.ErrShuttingDown) {
			t.Errorf("message after stopping: got %v, want ErrShuttingDown", err)
		}
		if time.Since(start) != 0 {
			t.Errorf("message after stopping waited %v", time.Since(start))
		}
		if got := down.callCount(); got != 1 {
			t.Errorf("handler called %d times, want 1 (the tripping one)", got)
		}
		if got := cb.State(); got != gobreaker.StateOpen {
			t.Errorf("state %v, want still open: shutdown is not a trial", got)
		}
	})
}

func TestBreaker_ReportsStateChanges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs bytes.Buffer
		logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{
			ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey {
					return slog.Attr{}
				}
				return a
			},
		}))
		var changes []string
		down := &downstream{}
		cb := newBreaker(t, breakerConfig(1, time.Second),
			middleware.WithLogger(logger),
			middleware.OnBreakerStateChange(func(name string, from, to gobreaker.State) {
				changes = append(changes, name+": "+from.String()+" -> "+to.String())
			}))
		h := cb.Middleware(down.handle)
		ctx := millrace.WithConsumer(t.Context(), &millrace.Consumer{Handler: "charge-card"})

		if _, err := h(breakerMsg(ctx)); !errors.Is(err, errDown) {
			t.Fatal(err)
		}
		down.setHealthy(true)
		if _, err := h(breakerMsg(ctx)); err != nil {
			t.Fatal(err)
		}

		want := []string{
			"charge-card: closed -> open",
			"charge-card: open -> half-open",
			"charge-card: half-open -> closed",
		}
		if strings.Join(changes, "\n") != strings.Join(want, "\n") {
			t.Errorf("OnStateChange saw\n%s\nwant\n%s", strings.Join(changes, "\n"), strings.Join(want, "\n"))
		}
		wantLogs := `level=WARN msg="circuit breaker state changed" breaker=charge-card from=closed to=open
level=WARN msg="circuit breaker state changed" breaker=charge-card from=open to=half-open
level=WARN msg="circuit breaker state changed" breaker=charge-card from=half-open to=closed
`
		if logs.String() != wantLogs {
			t.Errorf("logged\n%s\nwant\n%s", logs.String(), wantLogs)
		}
		if cb.Name() != "charge-card" {
			t.Errorf("Name() = %q, want the handler's name", cb.Name())
		}
	})
}

func TestBreaker_FailureRatioOverRollingInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var next []error
		cfg := breakerConfig(100, 0)
		cfg.FailureRatio = 0.5
		cfg.MinRequests = 4
		cfg.Interval = 10 * time.Second
		cb := newBreaker(t, cfg)
		h := cb.Middleware(func(*message.Message) ([]*message.Message, error) {
			err := next[0]
			next = next[1:]
			return nil, err
		})
		run := func(errs ...error) {
			for _, err := range errs {
				next = append(next, err)
				_, _ = h(breakerMsg(t.Context()))
			}
		}

		run(errDown, errDown) // aged out below
		time.Sleep(11 * time.Second)
		run(nil, nil, errDown)
		if got := cb.State(); got != gobreaker.StateClosed {
			t.Fatalf("1 failure in 3 within the window: state %v, want closed", got)
		}
		run(errDown)
		if got := cb.State(); got != gobreaker.StateOpen {
			t.Fatalf("2 failures in 4 within the window: state %v, want open", got)
		}
	})
}

func TestBreaker_PanicCountsAsFailure(t *testing.T) {
	cb := newBreaker(t, breakerConfig(1, 0))
	h := cb.Middleware(func(*message.Message) ([]*message.Message, error) { panic("boom") })
	func() {
		defer func() {
			if recover() == nil {
				t.Error("panic was swallowed")
			}
		}()
		_, _ = h(breakerMsg(t.Context()))
	}()
	if got := cb.State(); got != gobreaker.StateOpen {
		t.Errorf("state %v, want open", got)
	}
}

func TestBreaker_SharedByHandlersIsOneState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := breakerConfig(1, 0) // the default OpenTimeout: 30s
		cfg.Name = "inventory-api"
		cb := newBreaker(t, cfg)
		reserve := cb.Middleware((&downstream{}).handle)
		release := &downstream{healthy: true}
		tripBreaker(t, reserve, 1)

		wait := handleInBackground(t.Context(), cb.Middleware(release.handle), 1)
		synctest.Wait()
		if got := release.callCount(); got != 0 {
			t.Fatalf("other handler ran %d times while the shared breaker was open", got)
		}
		if r := wait()[0]; r.err != nil || r.at <= 30*time.Second {
			t.Errorf("other handler's message: %v after %v, want nil after the default 30s", r.err, r.at)
		}
	})
}

func TestBreakerConfig_Validate(t *testing.T) {
	valid := middleware.DefaultBreakerConfig()
	with := func(set func(*middleware.BreakerConfig)) middleware.BreakerConfig {
		cfg := valid
		set(&cfg)
		return cfg
	}
	for _, tc := range []struct {
		name string
		cfg  middleware.BreakerConfig
		want []string // key=value of every ConfigError, in order; nil for valid
	}{
		{"defaults", valid, nil},
		{"ratio rule on", with(func(c *middleware.BreakerConfig) { c.FailureRatio = 0.5 }), nil},
		{"ratio 1 over a second", with(func(c *middleware.BreakerConfig) { c.FailureRatio, c.MinRequests, c.Interval = 1, 3, time.Second }), nil},
		{"ratio above 1", with(func(c *middleware.BreakerConfig) { c.FailureRatio = 1.5 }), []string{"failure_ratio=1.5"}},
		{"ratio negative", with(func(c *middleware.BreakerConfig) { c.FailureRatio = -0.1 }), []string{"failure_ratio=-0.1"}},
		{"ratio NaN", with(func(c *middleware.BreakerConfig) { c.FailureRatio = math.NaN() }), []string{"failure_ratio=NaN"}},
		{"no failures allowed", with(func(c *middleware.BreakerConfig) { c.ConsecutiveFailures = 0 }), []string{"consecutive_failures=0"}},
		{"no min requests", with(func(c *middleware.BreakerConfig) { c.MinRequests = 0 }), []string{"min_requests=0"}},
		{"negative interval", with(func(c *middleware.BreakerConfig) { c.Interval = -time.Second }), []string{"interval=-1s"}},
		{"negative open timeout", with(func(c *middleware.BreakerConfig) { c.OpenTimeout = -time.Second }), []string{"open_timeout=-1s"}},
		{"no trial messages", with(func(c *middleware.BreakerConfig) { c.HalfOpenRequests = 0 }), []string{"half_open_requests=0"}},
		{"zero value: every error at once", middleware.BreakerConfig{}, []string{
			"consecutive_failures=0", "min_requests=0", "interval=0s", "open_timeout=0s", "half_open_requests=0",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkConfigErrors(t, tc.cfg.Validate(), tc.want)
			cb, err := middleware.NewBreaker(tc.cfg)
			checkConfigErrors(t, err, tc.want)
			if (cb == nil) != (tc.want != nil) {
				t.Errorf("NewBreaker returned %v with error %v", cb, err)
			}
		})
	}
}

func BenchmarkBreaker_Closed(b *testing.B) {
	cfg := middleware.DefaultBreakerConfig()
	cfg.Name = "bench"
	cb, err := middleware.NewBreaker(cfg)
	if err != nil {
		b.Fatal(err)
	}
	h := cb.Middleware(func(*message.Message) ([]*message.Message, error) { return nil, nil })
	msg := breakerMsg(context.Background())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func ExampleNewBreaker() {
	// One breaker per downstream: both handlers calling the payment
	// provider pause together while it is down.
	cfg := middleware.DefaultBreakerConfig()
	cfg.Name = "payment-provider"
	cfg.ConsecutiveFailures = 5
	cfg.OpenTimeout = 30 * time.Second
	payments, err := middleware.NewBreaker(cfg,
		middleware.WithLogger(slog.Default()),
		middleware.OnBreakerStateChange(func(name string, from, to gobreaker.State) {
			fmt.Printf("breaker %s: %s -> %s\n", name, from, to)
		}))
	if err != nil {
		panic(err)
	}
	var charge, refund message.HandlerFunc // the handlers
	charge = payments.Middleware(charge)
	refund = payments.Middleware(refund)
	_, _ = charge, refund
}
