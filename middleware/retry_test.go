package middleware_test

import (
	"context"
	"errors"
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

func TestRetry_BackoffSchedule(t *testing.T) {
	tests := []struct {
		name      string
		retry     middleware.Retry
		failures  int
		wantErr   bool
		wantWaits []time.Duration
	}{
		{"success needs no retry", middleware.Retry{MaxAttempts: 3}, 0, false, nil},
		{"transient then success", middleware.Retry{MaxAttempts: 3, InitialInterval: time.Second, Multiplier: 2, MaxInterval: time.Minute, Jitter: -1}, 2, false, []time.Duration{time.Second, 2 * time.Second}},
		{"capped by max interval", middleware.Retry{MaxAttempts: 5, InitialInterval: time.Second, Multiplier: 10, MaxInterval: 5 * time.Second, Jitter: -1}, 4, false, []time.Duration{time.Second, 5 * time.Second, 5 * time.Second, 5 * time.Second}},
		{"exhausted", middleware.Retry{MaxAttempts: 2, InitialInterval: time.Second, Multiplier: 2, MaxInterval: time.Minute, Jitter: -1}, 5, true, []time.Duration{time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var calls []time.Time
				r := tt.retry
				r.SetDefaults()
				_, err := r.Middleware(failing(tt.failures, errors.New("flaky"), &calls))(newMsg(context.Background()))
				if (err != nil) != tt.wantErr {
					t.Fatalf("err = %v, want error %v", err, tt.wantErr)
				}
				var waits []time.Duration
				for i := 1; i < len(calls); i++ {
					waits = append(waits, calls[i].Sub(calls[i-1]))
				}
				if len(waits) != len(tt.wantWaits) {
					t.Fatalf("waits %v, want %v", waits, tt.wantWaits)
				}
				for i := range waits {
					if waits[i] != tt.wantWaits[i] {
						t.Errorf("waits %v, want %v", waits, tt.wantWaits)
					}
				}
				if tt.wantErr && middleware.Attempts(err) != r.MaxAttempts {
					t.Errorf("Attempts(err) = %d, want %d", middleware.Attempts(err), r.MaxAttempts)
				}
			})
		})
	}
}

func TestRetry_JitterStaysWithinBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for range 50 {
			var calls []time.Time
			r := middleware.Retry{MaxAttempts: 2, InitialInterval: time.Second, Jitter: 0.2}
			r.SetDefaults()
			_, _ = r.Middleware(failing(1, errors.New("x"), &calls))(newMsg(context.Background()))
			if w := calls[1].Sub(calls[0]); w < 800*time.Millisecond || w > 1200*time.Millisecond {
				t.Fatalf("jittered wait %v outside 1s ± 20%%", w)
			}
		}
	})
}

func TestRetry_PermanentErrorIsNotRetried(t *testing.T) {
	var calls []time.Time
	r := middleware.Retry{}
	r.SetDefaults()
	_, err := r.Middleware(failing(9, millrace.Permanent(errors.New("bad payload")), &calls))(newMsg(context.Background()))
	if len(calls) != 1 || !millrace.IsPermanent(err) {
		t.Fatalf("%d calls, err %v: want one call and the permanent error", len(calls), err)
	}
}

func TestRetry_ShutdownStopsWaitingAndIsHeldBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		var calls []time.Time
		r := middleware.Retry{MaxAttempts: 5, InitialInterval: time.Minute}
		r.SetDefaults()
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

func TestTimeout_EachAttemptGetsAFreshDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var deadlines []time.Time
		h := func(msg *message.Message) ([]*message.Message, error) {
			dl, _ := msg.Context().Deadline()
			deadlines = append(deadlines, dl)
			<-msg.Context().Done()
			return nil, msg.Context().Err()
		}
		r := middleware.Retry{MaxAttempts: 2, InitialInterval: time.Second, Jitter: -1}
		r.SetDefaults()
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

func TestCorrelation_StampsProducedMessages(t *testing.T) {
	in := newMsg(context.Background())
	out := message.NewMessage("out-1", nil)
	keep := message.NewMessage("out-2", nil)
	keep.Metadata.Set(millrace.MetadataCorrelationID, "other-flow")
	_, _ = middleware.Correlation(func(*message.Message) ([]*message.Message, error) {
		return []*message.Message{out, keep}, nil
	})(in)
	if in.Metadata.Get(millrace.MetadataCorrelationID) != "" {
		t.Error("the handled message was modified")
	}
	if out.Metadata.Get(millrace.MetadataCorrelationID) != "m-1" || out.Metadata.Get(millrace.MetadataCausationID) != "m-1" {
		t.Errorf("produced metadata = %v", out.Metadata)
	}
	if keep.Metadata.Get(millrace.MetadataCorrelationID) != "other-flow" {
		t.Error("an existing correlation id was overwritten")
	}
}

// BenchmarkRetry_SuccessPath shows the cost of the retry layer when the
// handler succeeds: no allocation.
func BenchmarkRetry_SuccessPath(b *testing.B) {
	r := middleware.Retry{}
	r.SetDefaults()
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
