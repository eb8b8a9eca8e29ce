package framework_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/framework"
	"github.com/millrace/millrace/framework/frameworktest"
	"github.com/millrace/millrace/middleware"
)

// stackConfig makes the default stack's timings small and exact (no jitter).
const stackConfig = `
service:
  name: shop
middleware:
  timeout: 5s
  retry:
    max_attempts: 3
    initial_interval: 100ms
    multiplier: 2
    max_interval: 1s
    jitter: 0
  delayed_retry:
    delays: [10s, 1m]
  breaker:
    consecutive_failures: 3
    open_timeout: 30s
`

func TestStack_TransientFailureThenSuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := frameworktest.New(t, frameworktest.WithConfig(stackConfig))
		var attempts atomic.Int64
		framework.Handle(h.App, "charge", "orders", func(context.Context, OrderPlaced) error {
			if attempts.Add(1) < 3 {
				return errors.New("payment provider timeout")
			}
			return nil
		})
		h.Start()
		start := time.Now()
		h.Publish("orders", OrderPlaced{OrderID: "o-1"})
		frameworktest.WaitConsumed[OrderPlaced](h, "charge", 1)
		if took := time.Since(start); took != 300*time.Millisecond {
			t.Errorf("succeeded after %v, want immediate retries after 100ms and 200ms", took)
		}
		if n := len(h.Poisoned("charge")); n != 0 {
			t.Errorf("%d messages poisoned", n)
		}
	})
}

func TestStack_PermanentErrorGoesStraightToPoison(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := frameworktest.New(t, frameworktest.WithConfig(stackConfig))
		var attempts atomic.Int64
		framework.Handle(h.App, "charge", "orders", func(context.Context, OrderPlaced) error {
			attempts.Add(1)
			return millrace.Permanent(errors.New("card number invalid"))
		})
		h.Start()
		start := time.Now()
		h.Publish("orders", OrderPlaced{OrderID: "o-1"})
		p := h.WaitPoisoned("charge", 1)[0]
		if attempts.Load() != 1 || time.Since(start) != 0 {
			t.Errorf("%d attempts over %v: a permanent error must not be retried", attempts.Load(), time.Since(start))
		}
		if got := p.Metadata.Get(millrace.MetadataPoisonReason); got != "card number invalid" {
			t.Errorf("reason = %q", got)
		}
		if f := h.Failures("charge"); len(f) != 0 {
			t.Errorf("the original was nacked %d times; it must be acked once poisoned", len(f))
		}
	})
}

func TestStack_DecodeFailureIsPoisonedWithReason(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := frameworktest.New(t, frameworktest.WithConfig(stackConfig))
		framework.Handle(h.App, "charge", "orders", func(context.Context, OrderPlaced) error { return nil })
		h.Start()
		bad := message.NewMessage("bad-1", []byte(`{"order_id":`))
		if err := h.App.PublishMessage(context.Background(), "orders", bad); err != nil {
			t.Fatal(err)
		}
		p := h.WaitPoisoned("charge", 1)[0]
		if p.UUID != "bad-1" || string(p.Payload) != `{"order_id":` || !strings.Contains(p.Metadata.Get(millrace.MetadataPoisonReason), "decode OrderPlaced from message bad-1") {
			t.Errorf("poisoned %s %q: %v", p.UUID, p.Payload, p.Metadata)
		}
	})
}

func TestStack_RetriesExhaustedGoToPoisonWithFullMetadata(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := frameworktest.New(t, frameworktest.WithConfig(stackConfig+"  poison:\n    topic: dead-letters\n"), frameworktest.WithTimeout(time.Hour))
		var attempts atomic.Int64
		framework.Handle(h.App, "charge", "orders", func(context.Context, OrderPlaced) error {
			attempts.Add(1)
			return errors.New("provider down")
		}, framework.WithMiddleware(func(m *framework.MiddlewareConfig) { m.Breaker.Enabled = false }))
		h.Start()
		start := time.Now()
		h.Publish("orders", OrderPlaced{OrderID: "o-1"})
		p := h.WaitPoisoned("charge", 1)[0]
		// 3 immediate attempts, then two delayed rounds (10s, 1m) of 3 each.
		if attempts.Load() != 9 {
			t.Errorf("%d attempts, want 3 rounds of 3", attempts.Load())
		}
		want := map[string]string{
			millrace.MetadataPoisonReason:   "after 3 attempts: provider down",
			millrace.MetadataPoisonHandler:  "charge",
			millrace.MetadataPoisonTopic:    "orders",
			millrace.MetadataPoisonGroup:    "shop.charge",
			millrace.MetadataPoisonService:  "shop",
			millrace.MetadataPoisonAttempts: "9",
			millrace.MetadataType:           "OrderPlaced",
		}
		for k, v := range want {
			if got := p.Metadata.Get(k); got != v {
				t.Errorf("%s = %q, want %q", k, got, v)
			}
		}
		first, err1 := time.Parse(time.RFC3339Nano, p.Metadata.Get(millrace.MetadataPoisonFirstFailedAt))
		last, err2 := time.Parse(time.RFC3339Nano, p.Metadata.Get(millrace.MetadataPoisonLastFailedAt))
		if err1 != nil || err2 != nil || !first.Equal(start.Add(300*time.Millisecond)) || !last.Equal(start.Add(time.Minute+10*time.Second+900*time.Millisecond)) {
			t.Errorf("first/last failure %v / %v (start %v)", first, last, start)
		}
		if h.PoisonTopic() != "dead-letters" || len(h.Messages("dead-letters")) != 1 {
			t.Errorf("poison topic %s holds %d", h.PoisonTopic(), len(h.Messages("dead-letters")))
		}
	})
}

func TestStack_PanicIsRetriedThenPoisoned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := frameworktest.New(t, frameworktest.WithConfig(stackConfig))
		var attempts atomic.Int64
		framework.Handle(h.App, "charge", "orders", func(context.Context, OrderPlaced) error {
			if attempts.Add(1) < 3 {
				panic("nil pointer somewhere")
			}
			return nil
		})
		h.Start()
		h.Publish("orders", OrderPlaced{OrderID: "o-1"})
		frameworktest.WaitConsumed[OrderPlaced](h, "charge", 1)
		if attempts.Load() != 3 {
			t.Errorf("%d attempts, want the panics retried", attempts.Load())
		}
	})
}

func TestStack_TimeoutCancelsSlowAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := frameworktest.New(t, frameworktest.WithConfig(stackConfig))
		var attempts atomic.Int64
		framework.Handle(h.App, "charge", "orders", func(ctx context.Context, _ OrderPlaced) error {
			if attempts.Add(1) == 1 {
				<-ctx.Done() // the first attempt hangs until its deadline
				return ctx.Err()
			}
			return nil
		})
		h.Start()
		start := time.Now()
		h.Publish("orders", OrderPlaced{OrderID: "o-1"})
		frameworktest.WaitConsumed[OrderPlaced](h, "charge", 1)
		if took := time.Since(start); took != 5*time.Second+100*time.Millisecond {
			t.Errorf("took %v, want the 5s timeout then one 100ms retry", took)
		}
	})
}

func TestStack_DelayedRetryDoesNotBlockOtherMessages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := frameworktest.New(t, frameworktest.WithConfig(stackConfig))
		var mu sync.Mutex
		var handled []string
		failFirst := true
		framework.Handle(h.App, "charge", "orders", func(_ context.Context, o OrderPlaced) error {
			mu.Lock()
			defer mu.Unlock()
			if o.OrderID == "slow" && failFirst {
				return errors.New("not yet")
			}
			handled = append(handled, o.OrderID)
			return nil
		})
		h.Start()
		h.Publish("orders", OrderPlaced{OrderID: "slow"})
		h.Advance(time.Second) // its immediate retries are spent: scheduled in 10s
		h.Publish("orders", OrderPlaced{OrderID: "fast"})
		h.Advance(time.Second)
		mu.Lock()
		if strings.Join(handled, ",") != "fast" {
			t.Errorf("handled %v, want the second message through while the first waits", handled)
		}
		failFirst = false
		mu.Unlock()
		frameworktest.WaitConsumed[OrderPlaced](h, "charge", 2)
		redelivered := h.Outcomes("charge")[len(h.Outcomes("charge"))-1].Message
		if redelivered.Metadata.Get(millrace.MetadataRetryRounds) != "1" || redelivered.Metadata.Get(millrace.MetadataRetryAttempts) != "3" {
			t.Errorf("redelivered metadata %v", redelivered.Metadata)
		}
	})
}

func TestStack_PoisonPublishFailureNacks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := frameworktest.New(t, frameworktest.WithConfig(stackConfig))
		framework.Handle(h.App, "charge", "orders", func(context.Context, OrderPlaced) error {
			return millrace.Permanent(errors.New("invalid"))
		})
		h.Start()
		h.FailPublishes(h.PoisonTopic(), errors.New("broker refused"))
		h.Publish("orders", OrderPlaced{OrderID: "o-1"})
		f := h.WaitFailed("charge", 2) // nacked, redelivered, nacked again: kept
		if !strings.Contains(f[0].Err.Error(), "publish to poison topic shop.poison: broker refused") {
			t.Errorf("error = %v", f[0].Err)
		}
		h.FailPublishes(h.PoisonTopic(), nil)
		if p := h.WaitPoisoned("charge", 1); p[0].Metadata.Get(millrace.MetadataPoisonReason) != "invalid" {
			t.Errorf("poisoned %v", p[0].Metadata)
		}
	})
}

func TestStack_DuplicateDeliveryHandledOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := frameworktest.New(t, frameworktest.WithConfig(stackConfig))
		var runs atomic.Int64
		framework.Handle(h.App, "charge", "orders", func(context.Context, OrderPlaced) error {
			runs.Add(1)
			return nil
		})
		framework.Handle(h.App, "undeduplicated", "orders", func(context.Context, OrderPlaced) error { return nil },
			framework.WithMiddleware(func(m *framework.MiddlewareConfig) { m.Dedup.Enabled = false }))
		h.Start()
		for range 3 { // the same message id three times, as a broker redelivering would
			h.Publish("orders", OrderPlaced{OrderID: "o-1"}, framework.WithID("same-id"))
		}
		h.WaitUntil("both handlers saw 3 deliveries", func() bool {
			return len(h.Outcomes("charge")) == 3 && len(h.Outcomes("undeduplicated")) == 3
		})
		if runs.Load() != 1 {
			t.Errorf("handler ran %d times for one message id", runs.Load())
		}
	})
}

func TestStack_BreakerHoldsMessagesThenProcessesThemAfterRecovery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := frameworktest.New(t, frameworktest.WithConfig(stackConfig))
		var down atomic.Bool
		down.Store(true)
		var calls atomic.Int64
		framework.Handle(h.App, "ship", "orders", func(context.Context, OrderPlaced) error {
			calls.Add(1)
			if down.Load() {
				return errors.New("shipping API unavailable")
			}
			return nil
		}, framework.WithMiddleware(func(m *framework.MiddlewareConfig) {
			m.Retry.MaxAttempts = 1
			m.DelayedRetry.Enabled = false
			m.Poison.Enabled = true
		}))
		h.Start()
		for i := range 6 {
			h.Publish("orders", OrderPlaced{OrderID: "o-" + strconv.Itoa(i)})
		}
		h.Advance(5 * time.Second)
		heldCalls := calls.Load()
		h.Advance(20 * time.Second)
		if calls.Load() != heldCalls {
			t.Errorf("handler called while the breaker was open (%d -> %d)", heldCalls, calls.Load())
		}
		down.Store(false)
		frameworktest.WaitConsumed[OrderPlaced](h, "ship", 6-len(h.Poisoned("ship")))
		if p := h.Poisoned("ship"); len(p) > 3 {
			t.Errorf("%d messages poisoned; only the failures before the breaker opened may be", len(p))
		}
		for _, p := range h.Poisoned("ship") {
			if strings.Contains(p.Metadata.Get(millrace.MetadataPoisonReason), "circuit") {
				t.Errorf("a message was poisoned because the breaker was open: %v", p.Metadata)
			}
		}
	})
}

func TestStack_NamedBreakerIsSharedAndObservable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := frameworktest.New(t, frameworktest.WithConfig(stackConfig), frameworktest.WithTimeout(time.Minute))
		shared := framework.WithMiddleware(func(m *framework.MiddlewareConfig) {
			m.Breaker.Name = "payments-api"
			m.Retry.MaxAttempts = 1
			m.DelayedRetry.Enabled = false
		})
		var refunds atomic.Int64
		framework.Handle(h.App, "charge", "orders", func(context.Context, OrderPlaced) error {
			return errors.New("payments API down")
		}, shared)
		framework.Handle(h.App, "refund", "refunds", func(context.Context, OrderPlaced) error {
			refunds.Add(1)
			return nil
		}, shared)
		h.Start()
		if s, ok := h.App.BreakerState("payments-api"); !ok || s != "closed" {
			t.Fatalf("state %q, %v", s, ok)
		}
		for i := range 3 {
			h.Publish("orders", OrderPlaced{OrderID: strconv.Itoa(i)})
		}
		h.WaitPoisoned("charge", 3)
		if s, _ := h.App.BreakerState("payments-api"); s != "open" {
			t.Fatalf("state after 3 failures = %q, want open", s)
		}
		h.Publish("refunds", OrderPlaced{OrderID: "r-1"})
		h.Advance(10 * time.Second)
		if refunds.Load() != 0 {
			t.Error("the other handler of the shared breaker ran while it was open")
		}
		frameworktest.WaitConsumed[OrderPlaced](h, "refund", 1) // after open_timeout, as the trial
		if s, _ := h.App.BreakerState("payments-api"); s != "closed" {
			t.Errorf("state after a successful trial = %q", s)
		}
	})
}

func TestStack_NamedThrottleIsShared(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := frameworktest.New(t, frameworktest.WithConfig(stackConfig))
		shared := framework.WithMiddleware(func(m *framework.MiddlewareConfig) {
			m.Throttle = middleware.ThrottleConfig{Name: "warehouse", Rate: 2, Burst: 1}
		})
		framework.Handle(h.App, "reserve", "a", func(context.Context, OrderPlaced) error { return nil }, shared)
		framework.Handle(h.App, "release", "b", func(context.Context, OrderPlaced) error { return nil }, shared)
		h.Start()
		start := time.Now()
		for i := range 5 {
			h.Publish("a", OrderPlaced{OrderID: strconv.Itoa(i)})
			h.Publish("b", OrderPlaced{OrderID: strconv.Itoa(i)})
		}
		frameworktest.WaitConsumed[OrderPlaced](h, "reserve", 5)
		frameworktest.WaitConsumed[OrderPlaced](h, "release", 5)
		// 10 messages at 2/s with a burst of 1 through one shared bucket: 4.5s.
		if took := time.Since(start); took != 4500*time.Millisecond {
			t.Errorf("10 messages took %v, want 4.5s through one 2/s bucket", took)
		}
	})
}

// TestStack_HandlerCanCompleteItsOwnDedupClaim: the handler finds its dedup
// claim on its context, records the key as done itself (as an SQL handler
// does in its own transaction) and says so; a redelivery is then skipped.
func TestStack_HandlerCanCompleteItsOwnDedupClaim(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := frameworktest.New(t)
		var runs atomic.Int64
		var claimKey string
		framework.Handle(h.App, "charge", "payments", func(ctx context.Context, o OrderPlaced) error {
			runs.Add(1)
			c := middleware.ClaimFrom(ctx)
			if c == nil {
				return errors.New("no dedup claim on the handler's context")
			}
			claimKey = c.Key
			if err := c.Store.Complete(ctx, c.Key, c.Owner, c.TTL); err != nil {
				return err
			}
			c.MarkCompleted()
			return nil
		})
		h.Start()
		h.Publish("payments", OrderPlaced{OrderID: "o-1"}, framework.WithID("pay-1"))
		h.Publish("payments", OrderPlaced{OrderID: "o-1"}, framework.WithID("pay-1"))
		h.WaitUntil("both deliveries finished", func() bool { return len(h.Outcomes("charge")) == 2 })
		if runs.Load() != 1 {
			t.Errorf("handler ran %d times, want 1 (the redelivery is a duplicate)", runs.Load())
		}
		if want := framework.DefaultServiceName + ".charge:pay-1"; claimKey != want {
			t.Errorf("claim key %q, want %q", claimKey, want)
		}
		if f := h.Failures("charge"); len(f) != 0 {
			t.Errorf("failures: %v", f[0].Err)
		}
	})
}
