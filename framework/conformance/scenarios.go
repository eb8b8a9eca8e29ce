package conformance

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/framework"
	"github.com/millrace/millrace/middleware"
	"github.com/millrace/millrace/middleware/dlq"
)

type placeOrder struct {
	OrderID string `json:"order_id"`
	Cents   int    `json:"cents"`
}

type orderPlaced struct {
	OrderID string `json:"order_id"`
	Cents   int    `json:"cents"`
}

func (s *suite) typedRoundTrip(t *testing.T) {
	commands, events := fresh("orders.commands"), fresh("orders.events")
	svc := s.newService(t, fresh("shop"))
	framework.Handle(svc.App, "place-order", commands, func(ctx context.Context, c placeOrder) error {
		return svc.App.Publish(ctx, events, orderPlaced(c), framework.WithKey(c.OrderID))
	})
	framework.Handle(svc.App, "notify", events, func(context.Context, orderPlaced) error { return nil })
	svc.Start()

	cmd := placeOrder{OrderID: "o-1", Cents: 1250}
	if err := svc.App.Publish(context.Background(), commands, cmd, framework.WithKey(cmd.OrderID)); err != nil {
		t.Fatal(err)
	}
	svc.WaitUntil("the command and the event to be handled", func() bool {
		return len(svc.Handled("place-order")) == 1 && len(svc.Handled("notify")) == 1
	})

	command := svc.Outcomes("place-order")[0].Message
	event := svc.Outcomes("notify")[0].Message
	if got := decode[orderPlaced](t, event); got != orderPlaced(cmd) {
		t.Errorf("event = %+v, want %+v", got, cmd)
	}
	for key, want := range map[string]string{
		millrace.MetadataType:          framework.TypeName(orderPlaced{}),
		millrace.MetadataCorrelationID: command.Metadata.Get(millrace.MetadataCorrelationID),
		millrace.MetadataCausationID:   command.UUID,
		millrace.MetadataPartitionKey:  "o-1",
	} {
		if got := event.Metadata.Get(key); got != want || want == "" {
			t.Errorf("event metadata %s = %q, want %q (non-empty)", key, got, want)
		}
	}
}

func (s *suite) fanOut(t *testing.T) {
	const n = 20
	topic := fresh("orders.events")
	billing, shipping := s.newService(t, fresh("billing")), s.newService(t, fresh("shipping"))
	for _, svc := range []*service{billing, shipping} {
		framework.Handle(svc.App, "on-order", topic, func(context.Context, orderPlaced) error { return nil })
		svc.Start()
	}
	for i := range n {
		if err := billing.App.Publish(context.Background(), topic, orderPlaced{OrderID: strconv.Itoa(i)}, framework.WithKey(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	for _, svc := range []*service{billing, shipping} {
		svc.WaitUntil(fmt.Sprintf("each service to handle all %d messages", n), func() bool {
			return len(distinct(svc.Handled("on-order"))) == n
		})
	}
}

func (s *suite) workQueue(t *testing.T) {
	const n = 40
	topic, name := fresh("stock.commands"), fresh("stock")
	a, b := s.newService(t, name), s.newService(t, name)
	for _, svc := range []*service{a, b} {
		framework.Handle(svc.App, "reserve", topic, func(context.Context, placeOrder) error { return nil })
		svc.Start()
	}
	for i := range n {
		if err := a.App.Publish(context.Background(), topic, placeOrder{OrderID: strconv.Itoa(i)}, framework.WithKey(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, fmt.Sprintf("the two instances to handle all %d messages between them", n), func() bool {
		return len(distinct(append(a.Handled("reserve"), b.Handled("reserve")...))) == n
	})
	// At least once allows a redelivery (a rebalance), but sharing means the
	// group did not receive every message twice, as two groups would.
	if total := len(a.Handled("reserve")) + len(b.Handled("reserve")); total >= 2*n {
		t.Errorf("the instances handled %d deliveries of %d messages: the group did not share them", total, n)
	}
}

func (s *suite) retry(t *testing.T) {
	topic := fresh("payments")
	svc := s.newService(t, fresh("payments"))
	var calls atomic.Int32
	framework.Handle(svc.App, "charge", topic, func(context.Context, placeOrder) error {
		if calls.Add(1) <= 2 {
			return errors.New("gateway timeout")
		}
		return nil
	})
	svc.Start()
	if err := svc.App.Publish(context.Background(), topic, placeOrder{OrderID: "o-1"}); err != nil {
		t.Fatal(err)
	}
	svc.WaitUntil("the charge to succeed", func() bool { return len(svc.Handled("charge")) == 1 })
	if got := calls.Load(); got != 3 {
		t.Errorf("handler ran %d times, want 3 (two failures, one success)", got)
	}
	for _, o := range svc.Outcomes("charge") {
		if !o.Handled || o.Err != nil {
			t.Errorf("outcome %+v: want only the successful delivery", o)
		}
	}
}

func (s *suite) delayedRetry(t *testing.T) {
	topic := fresh("shipping")
	svc := s.newService(t, fresh("shipping"))
	var (
		mu        sync.Mutex
		slowCalls int
		firstFail time.Time
		handledAt = map[string]time.Time{}
	)
	framework.Handle(svc.App, "ship", topic, func(_ context.Context, c placeOrder) error {
		mu.Lock()
		defer mu.Unlock()
		if c.OrderID == "slow" {
			slowCalls++
			if slowCalls <= 3 { // every immediate attempt of the first round
				if slowCalls == 1 {
					firstFail = time.Now()
				}
				return errors.New("carrier unavailable")
			}
		}
		handledAt[c.OrderID] = time.Now()
		return nil
	})
	svc.Start()
	// Both with one key: on a transport that orders by key they share a
	// partition (Kafka) or a queue, which the failing one must not block.
	for _, id := range []string{"slow", "fast"} {
		if err := svc.App.Publish(context.Background(), topic, placeOrder{OrderID: id}, framework.WithKey("same-key")); err != nil {
			t.Fatal(err)
		}
	}
	svc.WaitUntil("both messages to be handled", func() bool { return len(svc.Handled("ship")) == 2 })

	mu.Lock()
	defer mu.Unlock()
	if !handledAt["fast"].Before(handledAt["slow"]) {
		t.Errorf("fast handled at %v, slow at %v: the delayed message blocked the one behind it", handledAt["fast"], handledAt["slow"])
	}
	if waited := handledAt["slow"].Sub(firstFail); waited < 600*time.Millisecond {
		t.Errorf("slow came back %v after its first failure, want the configured delay (700ms)", waited)
	}
	var retried *message.Message
	for _, o := range svc.Outcomes("ship") {
		if o.Handled && decode[placeOrder](t, o.Message).OrderID == "slow" {
			retried = o.Message
		}
	}
	if got := retried.Metadata.Get(millrace.MetadataRetryRounds); got != "1" {
		t.Errorf("redelivered message has %s = %q, want 1", millrace.MetadataRetryRounds, got)
	}
}

func (s *suite) poisonAndReplay(t *testing.T) {
	topic, name := fresh("billing"), fresh("billing")
	svc := s.newService(t, name)
	var broken atomic.Bool
	broken.Store(true)
	framework.Handle(svc.App, "invoice", topic, func(context.Context, placeOrder) error {
		if broken.Load() {
			return millrace.Permanent(errors.New("customer has no billing address"))
		}
		return nil
	})
	svc.Start()
	browser, ok := svc.Transport.(dlq.Browser)
	if !ok {
		t.Fatalf("transport %q does not implement dlq.Browser: its poison queue cannot be listed", s.target.Kind)
	}
	if err := svc.App.Publish(context.Background(), topic, placeOrder{OrderID: "o-9"}); err != nil {
		t.Fatal(err)
	}
	svc.WaitUntil("the message to be poisoned and acked", func() bool {
		out := svc.Outcomes("invoice")
		return len(out) == 1 && !out[0].Handled && out[0].Err == nil
	})
	original := svc.Outcomes("invoice")[0].Message

	poisonTopic := middleware.TopicFor(name)
	var entries []dlq.Entry
	waitUntil(t, "dlq.List to show the poisoned message", func() bool {
		var err error
		entries, err = dlq.List(context.Background(), browser, poisonTopic, dlq.Filter{Handler: "invoice"})
		if err != nil {
			t.Fatalf("dlq.List: %v", err)
		}
		return len(entries) > 0
	})
	e := entries[0]
	switch {
	case len(entries) != 1:
		t.Errorf("dlq.List = %d entries, want 1", len(entries))
	case e.Message.UUID != original.UUID:
		t.Errorf("poisoned id %q, want the original's %q", e.Message.UUID, original.UUID)
	case !strings.Contains(e.Reason, "no billing address"):
		t.Errorf("reason %q does not say why", e.Reason)
	case e.Handler != "invoice" || e.Topic != topic || e.Service != name || e.Group == "" || e.Attempts != 1:
		t.Errorf("entry %+v: want handler invoice, topic %s, service %s, a group, 1 attempt (permanent errors are not retried)", e, topic, name)
	case e.FirstFailedAt.IsZero() || e.LastFailedAt.IsZero():
		t.Errorf("entry %+v: failure times missing", e)
	}

	broken.Store(false)
	report, err := dlq.Replay(context.Background(), browser, svc.App.Publisher(), poisonTopic, dlq.Filter{Handler: "invoice"})
	if err != nil {
		t.Fatal(err)
	}
	if len(report.Replayed) != 1 {
		t.Fatalf("replayed %d messages, want 1 (report %+v)", len(report.Replayed), report)
	}
	svc.WaitUntil("the replayed message to be handled", func() bool { return len(svc.Handled("invoice")) == 1 })
	replayed := svc.Outcomes("invoice")[1].Message
	if got := replayed.Metadata.Get(millrace.MetadataReplayCount); got != "1" {
		t.Errorf("replayed message has %s = %q, want 1", millrace.MetadataReplayCount, got)
	}
	if got := replayed.Metadata.Get(millrace.MetadataPoisonReason); got != "" {
		t.Errorf("replayed message still has %s = %q", millrace.MetadataPoisonReason, got)
	}
}

func (s *suite) dedup(t *testing.T) {
	topic := fresh("emails")
	svc := s.newService(t, fresh("mailer"))
	var sent atomic.Int32
	framework.Handle(svc.App, "send", topic, func(_ context.Context, c placeOrder) error {
		if c.OrderID == "dup" {
			sent.Add(1)
		}
		return nil
	})
	svc.Start()
	for _, id := range []string{"dup", "dup", "marker"} {
		if err := svc.App.Publish(context.Background(), topic, placeOrder{OrderID: id}, framework.WithID(id+"-id"), framework.WithKey("k")); err != nil {
			t.Fatal(err)
		}
	}
	svc.WaitUntil("both deliveries of the duplicate and the marker", func() bool {
		n := 0
		for _, o := range svc.Outcomes("send") {
			if o.Err == nil {
				n++
			}
		}
		return n == 3
	})
	if got := sent.Load(); got != 1 {
		t.Errorf("handler ran %d times for one message delivered twice, want 1", got)
	}
}

func (s *suite) gracefulShutdown(t *testing.T) {
	topic, name := fresh("reports"), fresh("reports")
	first := s.newService(t, name)
	entered, release := make(chan struct{}), make(chan struct{})
	var (
		once     sync.Once
		finished atomic.Bool
	)
	framework.Handle(first.App, "render", topic, func(_ context.Context, c placeOrder) error {
		once.Do(func() { close(entered) })
		<-release
		finished.Store(true)
		return nil
	}, framework.Concurrency(1)) // one consumer: no rebalance (Kafka) moves the message meanwhile
	first.Start()
	if err := first.App.Publish(context.Background(), topic, placeOrder{OrderID: "in-flight"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-time.After(WaitTimeout):
		t.Fatal("the handler never received the message")
	}
	releaser := time.AfterFunc(300*time.Millisecond, func() { close(release) })
	defer releaser.Stop()
	first.Stop()
	if !finished.Load() {
		t.Fatal("Stop returned before the in-flight handler finished")
	}
	if out := first.Outcomes("render"); len(out) != 1 || out[0].Err != nil {
		t.Fatalf("outcomes %+v: want the in-flight message acked", out)
	}

	// The next instance of the service must not get it again.
	second := s.newService(t, name)
	framework.Handle(second.App, "render", topic, func(context.Context, placeOrder) error { return nil }, framework.Concurrency(1))
	second.Start()
	if err := second.App.Publish(context.Background(), topic, placeOrder{OrderID: "marker"}); err != nil {
		t.Fatal(err)
	}
	second.WaitUntil("the marker to be handled", func() bool {
		for _, o := range second.Outcomes("render") {
			if decode[placeOrder](t, o.Message).OrderID == "marker" {
				return true
			}
		}
		return false
	})
	for _, o := range second.Outcomes("render") {
		if id := decode[placeOrder](t, o.Message).OrderID; id != "marker" {
			t.Errorf("the next instance received %q again: it was acked before shutdown", id)
		}
	}
}
