package framework_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/framework"
	"github.com/millrace/millrace/middleware"
	"github.com/millrace/millrace/transports"
)

// callCounting is a transport whose publisher records every Publish call:
// its topic and the ids it carried.
type callCounting struct {
	transports.Transport
	mu    sync.Mutex
	calls []publishCall
}

type publishCall struct {
	topic string
	ids   []string
}

func (c *callCounting) Publisher() message.Publisher { return countingPublisher{c} }

// Delay is the memory transport's.
func (c *callCounting) Delay(ctx context.Context, topic, group string, msg *message.Message, d time.Duration) error {
	return c.Transport.(middleware.Delayer).Delay(ctx, topic, group, msg, d)
}

type countingPublisher struct{ c *callCounting }

func (p countingPublisher) Publish(topic string, msgs ...*message.Message) error {
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.UUID
	}
	p.c.mu.Lock()
	p.c.calls = append(p.c.calls, publishCall{topic: topic, ids: ids})
	p.c.mu.Unlock()
	return p.c.Transport.Publisher().Publish(topic, msgs...)
}

func (countingPublisher) Close() error { return nil }

func (c *callCounting) callsTo(topic string) []publishCall {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []publishCall
	for _, call := range c.calls {
		if call.topic == topic {
			out = append(out, call)
		}
	}
	return out
}

// countingApp is an App on the memory transport whose Publish calls are
// recorded.
func countingApp(t *testing.T, yaml string) (*framework.App, *callCounting) {
	t.Helper()
	var counting *callCounting
	app := newAppOn(t, yaml, io.Discard, func(tr transports.Transport) transports.Transport {
		counting = &callCounting{Transport: tr}
		return counting
	})
	return app, counting
}

func TestPublish_HandlerOutputGoesInOneCallPerTopicInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		app, counting := countingApp(t, noStack)
		var handled atomic.Int64
		framework.HandleRaw(app, "fan", "in", func(msg *message.Message) ([]*message.Message, error) {
			ctx := msg.Context()
			for _, id := range []string{"a1", "b1", "a2", "b2", "a3"} {
				topic := "out-a"
				if strings.HasPrefix(id, "b") {
					topic = "out-b"
				}
				if err := app.PublishMessage(ctx, topic, message.NewMessage(id, nil)); err != nil {
					return nil, err
				}
			}
			handled.Add(1)
			return []*message.Message{message.NewMessage("r1", nil), message.NewMessage("r2", nil)}, nil
		}, framework.PublishTo("out-a"))
		if err := app.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := app.Publish(context.Background(), "in", Job{Key: "k"}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if handled.Load() != 1 {
			t.Fatalf("handled %d, want 1", handled.Load())
		}
		a, b := counting.callsTo("out-a"), counting.callsTo("out-b")
		if len(a) != 1 || !slices.Equal(a[0].ids, []string{"a1", "a2", "a3", "r1", "r2"}) {
			t.Errorf("calls to out-a = %v, want one call with a1 a2 a3 r1 r2", a)
		}
		if len(b) != 1 || !slices.Equal(b[0].ids, []string{"b1", "b2"}) {
			t.Errorf("calls to out-b = %v, want one call with b1 b2", b)
		}
	})
}

func TestPublish_ReturnedAndPublishedMessagesCarryTheSameEnvelope(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		app, _ := countingApp(t, noStack)
		var sent sync.Map // id -> *message.Message, as a consumer got them
		// A middleware outside the handler returns a message of its own:
		// it leaves by the same path as the handler's.
		app.Use(func(h message.HandlerFunc) message.HandlerFunc {
			return func(msg *message.Message) ([]*message.Message, error) {
				out, err := h(msg)
				return append(out, message.NewMessage("from-middleware", nil)), err
			}
		})
		framework.HandleRaw(app, "relay", "in", func(msg *message.Message) ([]*message.Message, error) {
			if err := app.PublishMessage(msg.Context(), "out", message.NewMessage("published", nil)); err != nil {
				return nil, err
			}
			return []*message.Message{message.NewMessage("returned", nil)}, nil
		}, framework.PublishTo("out"))
		framework.HandleRaw(app, "collect", "out", func(msg *message.Message) ([]*message.Message, error) {
			sent.Store(msg.UUID, msg)
			return nil, nil
		})
		if err := app.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		in := message.NewMessage("in-1", nil)
		in.Metadata.Set(millrace.MetadataCorrelationID, "flow-7")
		if err := app.PublishMessage(context.Background(), "in", in); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		for _, id := range []string{"published", "returned", "from-middleware"} {
			v, ok := sent.Load(id)
			if !ok {
				t.Errorf("%s was not published", id)
				continue
			}
			md := v.(*message.Message).Metadata
			if md.Get(millrace.MetadataCorrelationID) != "flow-7" || md.Get(millrace.MetadataCausationID) != "in-1" ||
				md.Get(millrace.MetadataPublishedBy) != framework.DefaultServiceName || md.Get(millrace.MetadataPublishedAt) == "" {
				t.Errorf("%s: envelope %v, want correlation flow-7, causation in-1, published_by and published_at", id, md)
			}
		}
	})
}

func TestHandle_OtherTypesAreSkippedBeforeTheStack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		app, _ := countingApp(t, "")
		var throughStack atomic.Int64
		app.Use(func(h message.HandlerFunc) message.HandlerFunc {
			return func(msg *message.Message) ([]*message.Message, error) {
				throughStack.Add(1)
				return h(msg)
			}
		})
		var outcomes []framework.Outcome
		var mu sync.Mutex
		app.Observe(framework.ObserverFunc(func(o framework.Outcome) {
			mu.Lock()
			outcomes = append(outcomes, o)
			mu.Unlock()
		}))
		var got []string
		framework.Handle(app, "invoice", "orders", func(_ context.Context, e OrderPlaced) error {
			got = append(got, e.OrderID)
			return nil
		})
		framework.Handle(app, "versioned", "orders", func(_ context.Context, e OrderPlaced) error {
			return errors.New("must not run: it takes orders.OrderPlaced.v2 only")
		}, framework.MessageTypes("orders.OrderPlaced.v2"))
		if err := app.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		for _, v := range []any{InvoiceSent{OrderID: "not-mine"}, OrderPlaced{OrderID: "mine"}} {
			if err := app.Publish(context.Background(), "orders", v); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		if !slices.Equal(got, []string{"mine"}) {
			t.Errorf("invoice handled %q, want [mine]", got)
		}
		if throughStack.Load() != 1 {
			t.Errorf("%d messages went through the middleware stack, want 1 (the OrderPlaced for invoice)", throughStack.Load())
		}
		skipped := map[string]int{}
		for _, o := range outcomes {
			if o.Skipped {
				if o.Err != nil || o.Handled {
					t.Errorf("skipped outcome %+v has an error or counts as handled", o)
				}
				skipped[o.Handler]++
			}
		}
		if skipped["invoice"] != 1 || skipped["versioned"] != 2 {
			t.Errorf("skipped per handler = %v, want invoice 1, versioned 2", skipped)
		}
	})
}
