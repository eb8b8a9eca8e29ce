package middleware_test

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/middleware"
)

func newThrottle(t *testing.T, rate float64, burst int) *middleware.Throttle {
	t.Helper()
	th, err := middleware.NewThrottle(middleware.ThrottleConfig{Rate: rate, Burst: burst})
	if err != nil {
		t.Fatal(err)
	}
	return th
}

// recordCalls returns a handler that records, under mu, how long after
// start each call came.
func recordCalls(start time.Time, mu *sync.Mutex, at *[]time.Duration) message.HandlerFunc {
	return func(*message.Message) ([]*message.Message, error) {
		mu.Lock()
		defer mu.Unlock()
		*at = append(*at, time.Since(start))
		return nil, nil
	}
}

func TestThrottle_HonoursRateAndBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const perSecond, burst = 10, 2
		th := newThrottle(t, perSecond, burst)
		var mu sync.Mutex
		var at []time.Duration
		h := th.Middleware(recordCalls(time.Now(), &mu, &at))

		for range 22 {
			if _, err := h(breakerMsg(t.Context())); err != nil {
				t.Fatal(err)
			}
		}
		if at[0] != 0 || at[1] != 0 {
			t.Errorf("burst: first two calls at %v and %v, want both at once", at[0], at[1])
		}
		if last := at[len(at)-1]; last != 2*time.Second {
			t.Errorf("22 messages at 10/s with burst 2 took %v, want exactly 2s", last)
		}
		for i, d := range at {
			if allowed := burst + perSecond*d.Seconds(); float64(i+1) > allowed+1e-9 {
				t.Errorf("%d messages handled by %v, more than burst+rate*t = %g", i+1, d, allowed)
			}
		}
	})
}

func TestThrottle_BurstPassesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := newThrottle(t, 1, 5)
		var mu sync.Mutex
		var at []time.Duration
		h := th.Middleware(recordCalls(time.Now(), &mu, &at))
		for range 6 {
			if _, err := h(breakerMsg(t.Context())); err != nil {
				t.Fatal(err)
			}
		}
		want := []time.Duration{0, 0, 0, 0, 0, time.Second}
		for i := range want {
			if at[i] != want[i] {
				t.Errorf("call %d at %v, want %v", i, at[i], want[i])
			}
		}
	})
}

// TestThrottle_WaitEndsAtCancelOrShutdown: a message waiting for its turn
// returns at once, held back, when its context is cancelled or the service
// begins to shut down, and gives its turn back to the next message.
func TestThrottle_WaitEndsAtCancelOrShutdown(t *testing.T) {
	tests := []struct {
		name string
		// waiting returns the waiting message's context and what ends its wait.
		waiting func(t *testing.T) (context.Context, func())
		want    error
	}{
		{"cancelled", func(t *testing.T) (context.Context, func()) {
			ctx, cancel := context.WithCancel(t.Context())
			return ctx, cancel
		}, context.Canceled},
		{"shutting down", func(t *testing.T) (context.Context, func()) {
			stopping := make(chan struct{})
			ctx := millrace.WithConsumer(t.Context(), &millrace.Consumer{Handler: "charge", Stopping: stopping})
			return ctx, func() { close(stopping) }
		}, middleware.ErrShuttingDown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				th := newThrottle(t, 1.0/60, 1) // one a minute
				var mu sync.Mutex
				var at []time.Duration
				start := time.Now()
				h := th.Middleware(recordCalls(start, &mu, &at))
				if _, err := h(breakerMsg(t.Context())); err != nil {
					t.Fatal(err)
				}

				ctx, end := tt.waiting(t)
				done := make(chan error)
				go func() {
					_, err := h(breakerMsg(ctx))
					done <- err
				}()
				time.Sleep(time.Second)
				end()
				err := <-done
				if !errors.Is(err, tt.want) {
					t.Fatalf("got %v, want %v", err, tt.want)
				}
				if !middleware.HeldBack(ctx, err) {
					t.Errorf("HeldBack(%v) = false, want true (nacked, never poisoned)", err)
				}
				if elapsed := time.Since(start); elapsed != time.Second {
					t.Errorf("returned after %v, want at once (1s)", elapsed)
				}
				if len(at) != 1 {
					t.Errorf("handler ran %d times, want 1", len(at))
				}

				// The message gave its turn back: the next one comes when the
				// first one's minute is up.
				if _, err := h(breakerMsg(t.Context())); err != nil {
					t.Fatal(err)
				}
				if at[1] != time.Minute {
					t.Errorf("next message handled after %v, want 1m", at[1])
				}
			})
		})
	}
}

func TestThrottle_DeadlineIsWaitedForNotAnticipated(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := newThrottle(t, 1, 1)
		h := th.Middleware(func(*message.Message) ([]*message.Message, error) { return nil, nil })
		if _, err := h(breakerMsg(t.Context())); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		_, err := h(breakerMsg(ctx))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want context.DeadlineExceeded", err)
		}
		if elapsed := time.Since(start); elapsed != 100*time.Millisecond {
			t.Errorf("failed after %v, want at the deadline (100ms)", elapsed)
		}
	})
}

func TestThrottle_SharedByHandlersIsOneRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := newThrottle(t, 2, 1)
		var mu sync.Mutex
		var at []time.Duration
		rec := recordCalls(time.Now(), &mu, &at)
		a, b := th.Middleware(rec), th.Middleware(rec)
		for _, h := range []message.HandlerFunc{a, b, a, b} {
			if _, err := h(breakerMsg(t.Context())); err != nil {
				t.Fatal(err)
			}
		}
		if last := at[len(at)-1]; last != 1500*time.Millisecond {
			t.Errorf("4 messages over two handlers sharing 2/s took %v, want 1.5s", last)
		}
	})
}

func TestThrottle_ZeroRateIsNoLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th, err := middleware.NewThrottle(middleware.DefaultThrottleConfig())
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var at []time.Duration
		h := th.Middleware(recordCalls(time.Now(), &mu, &at))
		for range 1000 {
			if _, err := h(breakerMsg(t.Context())); err != nil {
				t.Fatal(err)
			}
		}
		if last := at[len(at)-1]; last != 0 {
			t.Errorf("1000 messages without a limit took %v, want no wait", last)
		}
	})
}

func TestThrottleConfig_Validate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  middleware.ThrottleConfig
		want []string // key=value of every ConfigError, in order; nil for valid
	}{
		{"defaults: no limit", middleware.DefaultThrottleConfig(), nil},
		{"rate", middleware.ThrottleConfig{Rate: 10, Burst: 1}, nil},
		{"rate and burst", middleware.ThrottleConfig{Rate: 0.5, Burst: 3}, nil},
		{"infinite rate", middleware.ThrottleConfig{Rate: math.Inf(1), Burst: 1}, nil},
		{"negative rate", middleware.ThrottleConfig{Rate: -1, Burst: 1}, []string{"rate=-1"}},
		{"NaN rate", middleware.ThrottleConfig{Rate: math.NaN(), Burst: 1}, []string{"rate=NaN"}},
		{"no burst", middleware.ThrottleConfig{Rate: 1}, []string{"burst=0"}},
		{"both at once", middleware.ThrottleConfig{Rate: math.Inf(-1), Burst: -1}, []string{"rate=-Inf", "burst=-1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkConfigErrors(t, tc.cfg.Validate(), tc.want)
			th, err := middleware.NewThrottle(tc.cfg)
			checkConfigErrors(t, err, tc.want)
			if (th == nil) != (tc.want != nil) {
				t.Errorf("NewThrottle returned %v with error %v", th, err)
			}
		})
	}
}

func BenchmarkThrottle_Unlimited(b *testing.B) {
	th, err := middleware.NewThrottle(middleware.DefaultThrottleConfig()) // no limit
	if err != nil {
		b.Fatal(err)
	}
	h := th.Middleware(func(*message.Message) ([]*message.Message, error) { return nil, nil })
	msg := breakerMsg(context.Background())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func ExampleNewThrottle() {
	// At most 50 messages a second, up to 10 at once after a quiet spell.
	th, err := middleware.NewThrottle(middleware.ThrottleConfig{Rate: 50, Burst: 10})
	if err != nil {
		panic(err)
	}
	var handler message.HandlerFunc // the handler
	handler = th.Middleware(handler)
	_ = handler
}
