package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/middleware"
)

// failing returns a handler that fails the first n calls with err and
// records when each call happened.
func failing(n int, err error, calls *[]time.Time) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		*calls = append(*calls, time.Now())
		if len(*calls) <= n {
			return nil, err
		}
		return nil, nil
	}
}

func newMsg(ctx context.Context) *message.Message {
	msg := message.NewMessage("m-1", []byte(`{}`))
	msg.SetContext(ctx)
	return msg
}

func newRetry(t testing.TB, cfg middleware.RetryConfig, opts ...middleware.Option) *middleware.Retry {
	t.Helper()
	r, err := middleware.NewRetry(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// retryConfig returns DefaultRetryConfig with the given attempts and
// initial interval, and no jitter.
func retryConfig(attempts int, initial time.Duration) middleware.RetryConfig {
	cfg := middleware.DefaultRetryConfig()
	cfg.MaxAttempts, cfg.InitialInterval, cfg.Jitter = attempts, initial, 0
	return cfg
}

func TestRetry_BackoffSchedule(t *testing.T) {
	const century = 100 * 365 * 24 * time.Hour
	tests := []struct {
		name      string
		cfg       middleware.RetryConfig
		failures  int
		wantErr   bool
		wantWaits []time.Duration
	}{
		{"success needs no retry", middleware.DefaultRetryConfig(), 0, false, nil},
		{"transient then success", middleware.RetryConfig{MaxAttempts: 3, InitialInterval: time.Second, Multiplier: 2, MaxInterval: time.Minute}, 2, false, []time.Duration{time.Second, 2 * time.Second}},
		{"capped by max interval", middleware.RetryConfig{MaxAttempts: 5, InitialInterval: time.Second, Multiplier: 10, MaxInterval: 5 * time.Second}, 4, false, []time.Duration{time.Second, 5 * time.Second, 5 * time.Second, 5 * time.Second}},
		{"capped without overflow", middleware.RetryConfig{MaxAttempts: 4, InitialInterval: time.Hour, Multiplier: 1e12, MaxInterval: century}, 3, false, []time.Duration{time.Hour, century, century}},
		{"no wait", middleware.RetryConfig{MaxAttempts: 3, Multiplier: 1}, 2, false, []time.Duration{0, 0}},
		{"exhausted", middleware.RetryConfig{MaxAttempts: 2, InitialInterval: time.Second, Multiplier: 2, MaxInterval: time.Minute}, 5, true, []time.Duration{time.Second}},
		{"one attempt never retries", middleware.RetryConfig{MaxAttempts: 1, InitialInterval: time.Second, Multiplier: 2, MaxInterval: time.Minute}, 5, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var calls []time.Time
				r := newRetry(t, tt.cfg)
				_, err := r.Middleware(failing(tt.failures, errors.New("flaky"), &calls))(newMsg(context.Background()))
				if (err != nil) != tt.wantErr {
					t.Fatalf("err = %v, want error %v", err, tt.wantErr)
				}
				var waits []time.Duration
				for i := 1; i < len(calls); i++ {
					waits = append(waits, calls[i].Sub(calls[i-1]))
				}
				if !slices.Equal(waits, tt.wantWaits) {
					t.Errorf("waits %v, want %v", waits, tt.wantWaits)
				}
				if tt.wantErr && middleware.Attempts(err) != tt.cfg.MaxAttempts {
					t.Errorf("Attempts(err) = %d, want %d", middleware.Attempts(err), tt.cfg.MaxAttempts)
				}
			})
		})
	}
}

func TestRetry_JitterStaysWithinBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := middleware.DefaultRetryConfig()
		cfg.MaxAttempts, cfg.InitialInterval, cfg.Jitter = 2, time.Second, 0.2
		r := newRetry(t, cfg)
		for range 50 {
			var calls []time.Time
			_, _ = r.Middleware(failing(1, errors.New("x"), &calls))(newMsg(context.Background()))
			if w := calls[1].Sub(calls[0]); w < 800*time.Millisecond || w > 1200*time.Millisecond {
				t.Fatalf("jittered wait %v outside 1s ± 20%%", w)
			}
		}
	})
}

func TestRetry_PermanentErrorIsNotRetried(t *testing.T) {
	var calls []time.Time
	r := newRetry(t, middleware.DefaultRetryConfig())
	_, err := r.Middleware(failing(9, millrace.Permanent(errors.New("bad payload")), &calls))(newMsg(context.Background()))
	if len(calls) != 1 || !millrace.IsPermanent(err) {
		t.Fatalf("%d calls, err %v: want one call and the permanent error", len(calls), err)
	}
}

func TestRetry_HeldBackErrorIsNotRetried(t *testing.T) {
	for _, held := range []error{
		fmt.Errorf("breaker: %w", middleware.ErrCircuitOpen),
		fmt.Errorf("dedup: %w", middleware.ErrDuplicateInFlight),
		fmt.Errorf("dedup: %w", middleware.ErrStoreUnavailable),
		fmt.Errorf("throttle: %w", middleware.ErrShuttingDown),
	} {
		t.Run(held.Error(), func(t *testing.T) {
			var calls []time.Time
			r := newRetry(t, middleware.DefaultRetryConfig())
			_, err := r.Middleware(failing(9, held, &calls))(newMsg(context.Background()))
			if len(calls) != 1 || err != held {
				t.Fatalf("%d calls, err %v: want one call and the error unchanged", len(calls), err)
			}
		})
	}
}

func TestRetry_CancelStopsWaitingAndIsHeldBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		var calls []time.Time
		cfg := retryConfig(5, time.Minute)
		cfg.MaxInterval = time.Hour
		r := newRetry(t, cfg)
		go func() {
			time.Sleep(10 * time.Second)
			cancel()
		}()
		msg := newMsg(ctx)
		_, err := r.Middleware(failing(9, errors.New("down"), &calls))(msg)
		if len(calls) != 1 || !errors.Is(err, context.Canceled) || !middleware.HeldBack(ctx, err) {
			t.Fatalf("%d calls, err %v: want the wait interrupted and the error held back (not poisoned)", len(calls), err)
		}
	})
}

func TestRetry_StoppingEndsBackoffAndIsHeldBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		stopping := make(chan struct{})
		ctx := millrace.WithConsumer(t.Context(), &millrace.Consumer{Handler: "charge", Stopping: stopping})
		var calls []time.Time
		cfg := retryConfig(5, time.Minute)
		cfg.MaxInterval = time.Hour
		r := newRetry(t, cfg)
		go func() {
			time.Sleep(10 * time.Second)
			close(stopping)
		}()
		start := time.Now()
		_, err := r.Middleware(failing(9, errDown, &calls))(newMsg(ctx))
		if !errors.Is(err, middleware.ErrShuttingDown) || !middleware.HeldBack(ctx, err) {
			t.Fatalf("got %v, want ErrShuttingDown, held back (nacked, never poisoned)", err)
		}
		if !strings.Contains(err.Error(), errDown.Error()) {
			t.Errorf("error %q does not give the last handler error", err)
		}
		if elapsed := time.Since(start); elapsed != 10*time.Second {
			t.Errorf("returned after %v, want at once when stopping closed (10s)", elapsed)
		}
		if len(calls) != 1 {
			t.Errorf("handler ran %d times, want 1: no attempt after shutdown began", len(calls))
		}

		// Once stopping is closed, a failed message is not retried even
		// without a wait.
		calls = nil
		noWait := newRetry(t, middleware.RetryConfig{MaxAttempts: 3, Multiplier: 1})
		if _, err := noWait.Middleware(failing(9, errDown, &calls))(newMsg(ctx)); !errors.Is(err, middleware.ErrShuttingDown) || len(calls) != 1 {
			t.Errorf("after stopping: %d calls, err %v; want 1 call and ErrShuttingDown", len(calls), err)
		}
	})
}

func TestRetryConfig_Validate(t *testing.T) {
	valid := middleware.DefaultRetryConfig()
	with := func(set func(*middleware.RetryConfig)) middleware.RetryConfig {
		cfg := valid
		set(&cfg)
		return cfg
	}
	for _, tc := range []struct {
		name string
		cfg  middleware.RetryConfig
		want []string // key=value of every ConfigError, in order; nil for valid
	}{
		{"defaults", valid, nil},
		{"one attempt", with(func(c *middleware.RetryConfig) { c.MaxAttempts = 1 }), nil},
		{"no wait, no jitter", middleware.RetryConfig{MaxAttempts: 3, Multiplier: 1}, nil},
		{"full jitter", with(func(c *middleware.RetryConfig) { c.Jitter = 1 }), nil},
		{"no attempts", with(func(c *middleware.RetryConfig) { c.MaxAttempts = 0 }), []string{"max_attempts=0"}},
		{"negative interval", with(func(c *middleware.RetryConfig) { c.InitialInterval = -time.Second }), []string{"initial_interval=-1s"}},
		{"shrinking", with(func(c *middleware.RetryConfig) { c.Multiplier = 0.5 }), []string{"multiplier=0.5"}},
		{"NaN multiplier", with(func(c *middleware.RetryConfig) { c.Multiplier = math.NaN() }), []string{"multiplier=NaN"}},
		{"infinite multiplier", with(func(c *middleware.RetryConfig) { c.Multiplier = math.Inf(1) }), []string{"multiplier=+Inf"}},
		{"cap below the first wait", with(func(c *middleware.RetryConfig) { c.InitialInterval = time.Minute }), []string{"max_interval=10s"}},
		{"jitter above 1", with(func(c *middleware.RetryConfig) { c.Jitter = 1.5 }), []string{"jitter=1.5"}},
		{"negative jitter", with(func(c *middleware.RetryConfig) { c.Jitter = -1 }), []string{"jitter=-1"}},
		{"every error at once", middleware.RetryConfig{MaxAttempts: -1, InitialInterval: time.Second, Jitter: 2}, []string{
			"max_attempts=-1", "multiplier=0", "max_interval=0s", "jitter=2",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkConfigErrors(t, tc.cfg.Validate(), tc.want)
			r, err := middleware.NewRetry(tc.cfg)
			checkConfigErrors(t, err, tc.want)
			if (r == nil) != (tc.want != nil) {
				t.Errorf("NewRetry returned %v with error %v", r, err)
			}
		})
	}
}

func TestTimeout_EachAttemptGetsAFreshDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var deadlines []time.Time
		h := func(msg *message.Message) ([]*message.Message, error) {
			dl, _ := msg.Context().Deadline()
			deadlines = append(deadlines, dl)
			<-msg.Context().Done()
			return nil, msg.Context().Err()
		}
		r := newRetry(t, retryConfig(2, time.Second))
		msg := newMsg(context.Background())
		_, err := r.Middleware(middleware.Timeout(5 * time.Second)(h))(msg)
		if !errors.Is(err, context.DeadlineExceeded) || len(deadlines) != 2 {
			t.Fatalf("err %v after %d attempts", err, len(deadlines))
		}
		if got := deadlines[1].Sub(deadlines[0]); got != 6*time.Second {
			t.Errorf("second deadline %v after the first, want 5s timeout + 1s backoff", got)
		}
		if _, ok := msg.Context().Deadline(); ok {
			t.Error("the message's context kept the timeout after the handler returned")
		}
	})
}

func TestRecoverer_PanicBecomesErrorWithStack(t *testing.T) {
	_, err := middleware.Recoverer(func(*message.Message) ([]*message.Message, error) { panic("kaboom") })(newMsg(context.Background()))
	var pe *middleware.PanicError
	if !errors.As(err, &pe) || pe.Value != "kaboom" || !strings.Contains(string(pe.Stack), "retry_test.go") {
		t.Fatalf("err = %v", err)
	}
}

// BenchmarkRetry_SuccessPath shows the cost of the retry layer when the
// handler succeeds: no allocation.
func BenchmarkRetry_SuccessPath(b *testing.B) {
	r := newRetry(b, middleware.DefaultRetryConfig())
	h := r.Middleware(func(*message.Message) ([]*message.Message, error) { return nil, nil })
	msg := newMsg(context.Background())
	b.ReportAllocs()
	for b.Loop() {
		_, _ = h(msg)
	}
}

func TestTimeout_DeadlineHoldsWithoutDoneAndForDerivedContexts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := func(msg *message.Message) ([]*message.Message, error) {
			ctx := msg.Context()
			if dl, ok := ctx.Deadline(); !ok || dl.Sub(time.Now()) != 3*time.Second {
				t.Errorf("deadline %v, %v", dl, ok)
			}
			time.Sleep(3 * time.Second) // ignores ctx, never calls Done
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				t.Errorf("Err() after the deadline = %v", ctx.Err())
			}
			return nil, nil
		}
		_, _ = middleware.Timeout(3 * time.Second)(h)(newMsg(context.Background()))

		derived := func(msg *message.Message) ([]*message.Message, error) {
			child, cancel := context.WithCancel(msg.Context())
			defer cancel()
			start := time.Now()
			<-child.Done()
			if time.Since(start) != 3*time.Second || !errors.Is(child.Err(), context.DeadlineExceeded) {
				t.Errorf("derived context ended after %v with %v", time.Since(start), child.Err())
			}
			return nil, nil
		}
		_, _ = middleware.Timeout(3 * time.Second)(derived)(newMsg(context.Background()))

		parent, cancelParent := context.WithCancel(context.Background())
		cancelParent()
		_, _ = middleware.Timeout(time.Hour)(func(msg *message.Message) ([]*message.Message, error) {
			if !errors.Is(msg.Context().Err(), context.Canceled) {
				t.Errorf("a cancelled parent shows %v", msg.Context().Err())
			}
			<-msg.Context().Done()
			return nil, nil
		})(newMsg(parent))
	})
}

func ExampleNewRetry() {
	cfg := middleware.DefaultRetryConfig()
	cfg.MaxAttempts = 4
	cfg.InitialInterval = 10 * time.Millisecond
	retry, err := middleware.NewRetry(cfg)
	if err != nil {
		panic(err)
	}

	attempt := 0
	reserve := retry.Middleware(func(msg *message.Message) ([]*message.Message, error) {
		attempt++
		if attempt < 3 {
			fmt.Printf("attempt %d: inventory busy\n", attempt)
			return nil, errors.New("inventory busy")
		}
		fmt.Printf("attempt %d: reserved\n", attempt)
		return nil, nil
	})
	if _, err := reserve(message.NewMessage("m-1", nil)); err != nil {
		fmt.Println(err)
	}

	// A permanent error is not retried: the poison queue takes it at once.
	reject := retry.Middleware(func(msg *message.Message) ([]*message.Message, error) {
		fmt.Println("rejecting")
		return nil, millrace.Permanent(errors.New("unknown product"))
	})
	_, err = reject(message.NewMessage("m-2", nil))
	fmt.Println("permanent:", millrace.IsPermanent(err))

	// A bad configuration is reported key by key, all at once.
	_, err = middleware.NewRetry(middleware.RetryConfig{MaxAttempts: 0, Multiplier: 0.5})
	fmt.Println(err)
	// Output:
	// attempt 1: inventory busy
	// attempt 2: inventory busy
	// attempt 3: reserved
	// rejecting
	// permanent: true
	// retry: config key "max_attempts": value "0": must be at least 1 (1 means no retries)
	// config key "multiplier": value "0.5": must be a number of at least 1
}
