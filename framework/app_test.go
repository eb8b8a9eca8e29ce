package framework_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
)

// noStack switches off the middleware that retries, delays and poisons, for
// tests of what the App and the transport do on their own.
const noStack = `
middleware:
  retry: {max_attempts: 1}
  delayed_retry: {enabled: false}
  poison: {enabled: false}
  breaker: {enabled: false}
`

type OrderPlaced struct {
	OrderID string `json:"order_id"`
	Total   int    `json:"total"`
}

type InvoiceSent struct {
	OrderID string `json:"order_id"`
}

type Job struct {
	Key string `json:"key"`
	Seq int    `json:"seq"`
}

func TestHandle_TypedHandlerPublishesWithEnvelope(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := frameworktest.New(t, frameworktest.WithConfig("service:\n  name: billing\n"))
		framework.Handle(h.App, "invoice", "orders", func(ctx context.Context, e OrderPlaced) error {
			return h.App.Publish(ctx, "invoices", InvoiceSent{OrderID: e.OrderID})
		})
		h.Start()
		h.Publish("orders", OrderPlaced{OrderID: "o-1", Total: 42}, framework.WithKey("o-1"))

		got := frameworktest.WaitPublished[InvoiceSent](h, "invoices", 1)
		if got[0].OrderID != "o-1" {
			t.Errorf("published %+v", got)
		}
		in, out := h.Messages("orders")[0], h.Messages("invoices")[0]
		checks := []struct{ what, got, want string }{
			{"in type", in.Metadata.Get(millrace.MetadataType), "OrderPlaced"},
			{"in key", in.Metadata.Get(millrace.MetadataPartitionKey), "o-1"},
			{"in correlation starts a flow", in.Metadata.Get(millrace.MetadataCorrelationID), in.UUID},
			{"out type", out.Metadata.Get(millrace.MetadataType), "InvoiceSent"},
			{"out correlation inherited", out.Metadata.Get(millrace.MetadataCorrelationID), in.UUID},
			{"out causation", out.Metadata.Get(millrace.MetadataCausationID), in.UUID},
			{"out published_by", out.Metadata.Get(millrace.MetadataPublishedBy), "billing"},
			{"out content type", out.Metadata.Get(millrace.MetadataContentType), "application/json"},
		}
		for _, c := range checks {
			if c.got != c.want {
				t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
			}
		}
		if _, err := time.Parse(time.RFC3339Nano, out.Metadata.Get(millrace.MetadataPublishedAt)); err != nil {
			t.Errorf("published_at: %v", err)
		}
		if c := frameworktest.WaitConsumed[OrderPlaced](h, "invoice", 1); len(c) != 1 || c[0].Total != 42 {
			t.Errorf("consumed %+v", c)
		}
	})
}

func TestHandle_DecodeFailureIsPermanentAndMessageNotLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := frameworktest.New(t, frameworktest.WithConfig(noStack))
		var calls atomic.Int64
		framework.Handle(h.App, "invoice", "orders", func(context.Context, OrderPlaced) error {
			calls.Add(1)
			return nil
		})
		h.Start()
		bad := message.NewMessage("bad-1", []byte(`{"order_id": 17`))
		bad.Metadata.Set(millrace.MetadataType, "OrderPlaced")
		if err := h.App.PublishMessage(context.Background(), "orders", bad); err != nil {
			t.Fatal(err)
		}

		failures := h.WaitFailed("invoice", 1)
		err := failures[0].Err
		var de *framework.DecodeError
		if !millrace.IsPermanent(err) || !errors.As(err, &de) {
			t.Fatalf("error %v: want a permanent *framework.DecodeError", err)
		}
		if de.Type != "OrderPlaced" || de.MessageID != "bad-1" || !strings.Contains(err.Error(), "decode OrderPlaced from message bad-1") {
			t.Errorf("error %q does not say what failed", err)
		}
		// Not lost: the broker delivers it again after its redelivery delay.
		h.Advance(time.Second)
		if n := len(h.Failures("invoice")); n < 2 {
			t.Errorf("failed %d times after 1s, want the message redelivered", n)
		}
		if calls.Load() != 0 {
			t.Errorf("handler called %d times with an undecodable payload", calls.Load())
		}
	})
}

func TestHandle_SkipsMessagesOfOtherTypes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := frameworktest.New(t)
		var got []string
		framework.Handle(h.App, "invoice", "orders", func(_ context.Context, e OrderPlaced) error {
			got = append(got, e.OrderID)
			return nil
		})
		h.Start()
		h.Publish("orders", InvoiceSent{OrderID: "not-mine"})
		untyped := message.NewMessage("foreign-1", []byte(`{"order_id":"from-a-foreign-client"}`))
		if err := h.App.Publisher().Publish("orders", untyped); err != nil {
			t.Fatal(err)
		}
		h.Publish("orders", OrderPlaced{OrderID: "mine"})
		h.WaitUntil("3 messages handled", func() bool { return len(h.Outcomes("invoice")) == 3 })
		if strings.Join(got, ",") != "from-a-foreign-client,mine" {
			t.Errorf("handled %q, want the untyped and the OrderPlaced message", got)
		}
		if f := h.Failures("invoice"); len(f) != 0 {
			t.Errorf("failures: %v", f[0].Err)
		}
	})
}

func TestHandle_PublishesOnlyWhenHandlerSucceeds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := frameworktest.New(t, frameworktest.WithConfig(noStack))
		var attempts atomic.Int64
		framework.Handle(h.App, "invoice", "orders", func(ctx context.Context, e OrderPlaced) error {
			if err := h.App.Publish(ctx, "invoices", InvoiceSent{OrderID: e.OrderID}); err != nil {
				return err
			}
			if attempts.Add(1) < 3 {
				return errors.New("downstream unavailable")
			}
			return nil
		})
		h.Start()
		h.Publish("orders", OrderPlaced{OrderID: "o-1"})
		frameworktest.WaitConsumed[OrderPlaced](h, "invoice", 1)
		if n := len(h.Failures("invoice")); n != 2 {
			t.Errorf("%d failures, want 2", n)
		}
		if got := frameworktest.Published[InvoiceSent](h, "invoices"); len(got) != 1 {
			t.Errorf("published %d invoices, want exactly 1 (failed attempts publish nothing)", len(got))
		}
	})
}

func TestHandle_PanicBecomesErrorAndMessageIsRedelivered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := frameworktest.New(t, frameworktest.WithConfig(noStack))
		var attempts atomic.Int64
		framework.Handle(h.App, "invoice", "orders", func(context.Context, OrderPlaced) error {
			if attempts.Add(1) == 1 {
				var m map[string]int
				m["boom"]++ // nil map write
			}
			return nil
		})
		h.Start()
		h.Publish("orders", OrderPlaced{OrderID: "o-1"})
		frameworktest.WaitConsumed[OrderPlaced](h, "invoice", 1)
		f := h.Failures("invoice")
		var pe *framework.PanicError
		if len(f) != 1 || !errors.As(f[0].Err, &pe) || !bytes.Contains(pe.Stack, []byte("app_test.go")) {
			t.Fatalf("failures %v: want one *framework.PanicError with the stack", f)
		}
	})
}

func TestHandleRaw_ReturnedMessagesGoToPublishTo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := frameworktest.New(t, frameworktest.WithConfig(noStack))
		framework.HandleRaw(h.App, "relay", "in", func(msg *message.Message) ([]*message.Message, error) {
			out := message.NewMessage("relayed-"+msg.UUID, msg.Payload)
			return []*message.Message{out}, nil
		}, framework.PublishTo("out"))
		framework.HandleRaw(h.App, "broken-relay", "in", func(msg *message.Message) ([]*message.Message, error) {
			return []*message.Message{message.NewMessage("x", nil)}, nil
		})
		h.Start()
		h.Publish("in", Job{Key: "a"})
		h.WaitUntil("relayed", func() bool { return len(h.Messages("out")) == 1 })
		in, out := h.Messages("in")[0], h.Messages("out")[0]
		if out.UUID != "relayed-"+in.UUID || out.Metadata.Get(millrace.MetadataCausationID) != in.UUID {
			t.Errorf("out = %s (causation %q)", out.UUID, out.Metadata.Get(millrace.MetadataCausationID))
		}
		if f := h.WaitFailed("broken-relay", 1); !errors.Is(f[0].Err, framework.ErrNoPublishTopic) {
			t.Errorf("broken relay error = %v, want ErrNoPublishTopic", f[0].Err)
		}
	})
}

func TestConcurrency_HandlesNMessagesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := frameworktest.New(t)
		release := make(chan struct{})
		var running, peak atomic.Int64
		framework.Handle(h.App, "work", "jobs", func(context.Context, Job) error {
			n := running.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			<-release
			running.Add(-1)
			return nil
		}, framework.Concurrency(4))
		h.Start()
		for i := range 10 {
			h.Publish("jobs", Job{Key: fmt.Sprint("k", i), Seq: i}, framework.WithKey(fmt.Sprint("k", i)))
		}
		synctest.Wait()
		if got := running.Load(); got != 4 {
			t.Errorf("%d handlers running at once, want 4", got)
		}
		close(release)
		frameworktest.WaitConsumed[Job](h, "work", 10)
		if peak.Load() != 4 {
			t.Errorf("peak concurrency %d, want 4", peak.Load())
		}
	})
}

func TestConcurrency_DefaultFromConfig(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := frameworktest.New(t, frameworktest.WithEnv("MILLRACE_HANDLERS_CONCURRENCY=3"))
		release := make(chan struct{})
		var running atomic.Int64
		framework.Handle(h.App, "work", "jobs", func(context.Context, Job) error {
			running.Add(1)
			<-release
			return nil
		})
		h.Start()
		for i := range 5 {
			h.Publish("jobs", Job{Seq: i})
		}
		synctest.Wait()
		if got := running.Load(); got != 3 {
			t.Errorf("%d running, want handlers.concurrency = 3", got)
		}
		close(release)
		frameworktest.WaitConsumed[Job](h, "work", 5)
	})
}

func TestConcurrency_KeepsOrderPerKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := frameworktest.New(t)
		var mu sync.Mutex
		seen := map[string][]int{}  // successfully handled seqs, per key
		failed := map[string]bool{} // "key/seq" that failed once already
		var running, peak atomic.Int64
		framework.Handle(h.App, "work", "jobs", func(_ context.Context, j Job) error {
			n := running.Add(1)
			defer running.Add(-1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(time.Duration(j.Seq%3) * time.Millisecond) // uneven work
			mu.Lock()
			defer mu.Unlock()
			id := fmt.Sprint(j.Key, "/", j.Seq)
			if j.Seq%7 == 3 && !failed[id] { // some messages fail once and are redelivered
				failed[id] = true
				return errors.New("transient")
			}
			seen[j.Key] = append(seen[j.Key], j.Seq)
			return nil
		}, framework.Concurrency(8))
		h.Start()
		const keys, perKey = 5, 20
		for i := range perKey {
			for k := range keys {
				key := fmt.Sprint("k", k)
				h.Publish("jobs", Job{Key: key, Seq: i}, framework.WithKey(key))
			}
		}
		frameworktest.WaitConsumed[Job](h, "work", keys*perKey)
		for k := range keys {
			key := fmt.Sprint("k", k)
			for i, seq := range seen[key] {
				if seq != i {
					t.Fatalf("key %s handled out of order: %v", key, seen[key])
				}
			}
		}
		if peak.Load() < 2 {
			t.Errorf("peak concurrency %d: keys were not handled in parallel", peak.Load())
		}
	})
}

func TestRegistration_ErrorsStopStart(t *testing.T) {
	tests := []struct {
		name     string
		register func(*framework.App)
		want     string
	}{
		{"empty name", func(a *framework.App) { framework.Handle(a, "", "t", noop) }, "empty handler name"},
		{"duplicate name", func(a *framework.App) {
			framework.Handle(a, "h", "t", noop)
			framework.Handle(a, "h", "u", noop)
		}, `handler "h" (topic "u"): a handler with this name is already registered`},
		{"empty topic", func(a *framework.App) { framework.Handle(a, "h", "", noop) }, `handler "h" (topic ""): empty topic`},
		{"bad concurrency", func(a *framework.App) { framework.Handle(a, "h", "t", noop, framework.Concurrency(0)) }, "concurrency 0: must be between 1 and 1024"},
		{"bad max in flight", func(a *framework.App) { framework.Handle(a, "h", "t", noop, framework.MaxInFlight(-2)) }, "max in flight -2: must be between 0 (one per partition) and 1024"},
		{"empty group", func(a *framework.App) { framework.Handle(a, "h", "t", noop, framework.Group("")) }, "empty consumer group"},
		{"nil raw handler", func(a *framework.App) { framework.HandleRaw(a, "h", "t", nil) }, "nil handler function"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := newApp(t, "")
			tt.register(app)
			err := app.Start(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Start() = %v, want error containing %q", err, tt.want)
			}
			select {
			case <-app.Started():
			default:
				t.Fatal("Started() not closed after Start failed: its waiters would hang")
			}
			if got := app.StartErr(); got != err {
				t.Errorf("StartErr() = %v, want Start's error %v", got, err)
			}
		})
	}
}

func noop(context.Context, Job) error { return nil }

func TestLogger_HandlerLinesCarryServiceHandlerAndMessageID(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf syncBuffer
		app := newAppWithLog(t, "service:\n  name: shop\nlog:\n  format: json\n", &buf)
		done := make(chan struct{})
		framework.Handle(app, "greeter", "jobs", func(ctx context.Context, j Job) error {
			framework.Logger(ctx).Info("greeting", "key", j.Key)
			close(done)
			return nil
		})
		if err := app.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := app.Publish(context.Background(), "jobs", Job{Key: "hello"}, framework.WithID("m-1")); err != nil {
			t.Fatal(err)
		}
		<-done
		if err := app.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		var line map[string]any
		for _, l := range strings.Split(buf.String(), "\n") {
			if strings.Contains(l, `"greeting"`) {
				if err := json.Unmarshal([]byte(l), &line); err != nil {
					t.Fatal(err)
				}
			}
		}
		want := map[string]any{"service": "shop", "handler": "greeter", "message_id": "m-1", "key": "hello", "level": "INFO"}
		for k, v := range want {
			if line[k] != v {
				t.Errorf("log line %v: %s = %v, want %v", line, k, line[k], v)
			}
		}
	})
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestPublishMessage_SeveralMessagesInOneCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := frameworktest.New(t, frameworktest.WithConfig(noStack))
		h.Start()
		a, b := message.NewMessage("m-1", []byte(`{"order_id":"o-1"}`)), message.NewMessage("m-2", []byte(`{"order_id":"o-2"}`))
		if err := h.App.PublishMessage(context.Background(), "orders", a, b); err != nil {
			t.Fatal(err)
		}
		got := h.Messages("orders")
		if len(got) != 2 || got[0].UUID != "m-1" || got[1].UUID != "m-2" {
			t.Fatalf("published %v, want m-1 and m-2 in order", got)
		}
		for _, m := range got {
			if m.Metadata.Get(millrace.MetadataCorrelationID) != m.UUID || m.Metadata.Get(millrace.MetadataPublishedBy) == "" {
				t.Errorf("message %s lacks its envelope: %v", m.UUID, m.Metadata)
			}
		}
		if err := h.App.PublishMessage(context.Background(), "orders"); err != nil {
			t.Errorf("PublishMessage without messages: %v, want nil", err)
		}
	})
}
