package middleware_test

// Every middleware of the package in a plain Watermill message.Router, over
// the GoChannel pub/sub, where no millrace.Consumer is on the context: the
// names come from the router (ConsumerOf) or from Identify. Each test runs
// in a synctest bubble, router included, so time is fake and
// synctest.Wait tells when every message has been handled.

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/sony/gobreaker/v2"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/middleware"
)

// routerRig is a Watermill router over a GoChannel pub/sub. Both are
// closed when the test ends.
type routerRig struct {
	t      *testing.T
	pubSub *gochannel.GoChannel
	router *message.Router
}

func newRouterRig(t *testing.T) *routerRig {
	t.Helper()
	pubSub := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
	t.Cleanup(func() {
		if err := pubSub.Close(); err != nil {
			t.Errorf("close pub/sub: %v", err)
		}
	})
	router, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	return &routerRig{t: t, pubSub: pubSub, router: router}
}

// run starts the router and returns once every handler has subscribed.
func (r *routerRig) run() {
	r.t.Helper()
	done := make(chan error, 1)
	go func() { done <- r.router.Run(context.Background()) }()
	r.t.Cleanup(func() {
		if err := r.router.Close(); err != nil {
			r.t.Errorf("close router: %v", err)
		}
		if err := <-done; err != nil {
			r.t.Errorf("router: %v", err)
		}
	})
	<-r.router.Running()
}

// subscribe returns what is published to topic from now on; call it before
// run.
func (r *routerRig) subscribe(topic string) <-chan *message.Message {
	r.t.Helper()
	msgs, err := r.pubSub.Subscribe(context.Background(), topic)
	if err != nil {
		r.t.Fatal(err)
	}
	return msgs
}

func (r *routerRig) publish(topic string, msgs ...*message.Message) {
	r.t.Helper()
	if err := r.pubSub.Publish(topic, msgs...); err != nil {
		r.t.Fatal(err)
	}
}

// receive returns the next message on msgs, acked, or fails the test if
// none comes within a (fake) hour.
func receive(t *testing.T, msgs <-chan *message.Message) *message.Message {
	t.Helper()
	select {
	case msg := <-msgs:
		msg.Ack()
		return msg
	case <-time.After(time.Hour):
		t.Fatal("no message")
		return nil
	}
}

// noMoreMessages fails the test if msgs holds a message once every
// goroutine is idle.
func noMoreMessages(t *testing.T, msgs <-chan *message.Message) {
	t.Helper()
	synctest.Wait()
	select {
	case msg := <-msgs:
		msg.Ack()
		t.Errorf("unexpected message %s %v", msg.UUID, msg.Metadata)
	default:
	}
}

// checkMetadata fails the test unless msg carries every key=value of want.
func checkMetadata(t *testing.T, msg *message.Message, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got := msg.Metadata.Get(k); got != v {
			t.Errorf("metadata %s = %q, want %q", k, got, v)
		}
	}
}

// recorder collects what handlers, which the router runs on goroutines of
// its own, see, for the test to read.
type recorder[T any] struct {
	mu    sync.Mutex
	items []T
}

func (r *recorder[T]) add(v T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.items = append(r.items, v)
}

func (r *recorder[T]) all() []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.items)
}

// syncBuffer is a bytes.Buffer safe for a logger on another goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// delayCall is one redelivery a publishingDelayer was asked for.
type delayCall struct {
	topic, group, uuid, rounds string
	delay                      time.Duration
}

// publishingDelayer is a Delayer over a Watermill publisher, as a transport
// without native delays could write one: it records each call and publishes
// the message back to its topic once the delay has passed. It is not
// durable, and GoChannel has no consumer groups, so every subscriber of the
// topic gets the copy.
type publishingDelayer struct {
	pub   message.Publisher // nil: record only
	mu    sync.Mutex
	calls []delayCall
}

func (d *publishingDelayer) Delay(_ context.Context, topic, group string, msg *message.Message, delay time.Duration) error {
	d.mu.Lock()
	d.calls = append(d.calls, delayCall{topic, group, msg.UUID, msg.Metadata.Get(millrace.MetadataRetryRounds), delay})
	d.mu.Unlock()
	if d.pub != nil {
		time.AfterFunc(delay, func() { _ = d.pub.Publish(topic, msg) })
	}
	return nil
}

func (d *publishingDelayer) scheduled() []delayCall {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.calls)
}

func newPoisonQueue(t *testing.T, pub message.Publisher) *middleware.PoisonQueue {
	t.Helper()
	p, err := middleware.NewPoisonQueue(middleware.DefaultPoisonConfig(), pub)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConsumerOf_InRouterIsTheHandlerAndItsTopic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := newRouterRig(t)
		var seen recorder[millrace.Consumer]
		rig.router.AddConsumerHandler("charge", "orders", rig.pubSub, func(msg *message.Message) error {
			seen.add(*middleware.ConsumerOf(msg.Context()))
			return nil
		})
		rig.run()
		rig.publish("orders", message.NewMessage("o-1", nil))
		synctest.Wait()

		want := millrace.Consumer{Service: "charge", Handler: "charge", Topic: "orders", Group: "charge"}
		if got := seen.all(); len(got) != 1 || got[0] != want {
			t.Errorf("ConsumerOf = %+v, want %+v", got, want)
		}
	})
}

func TestConsumerOf_AppConsumerOrNothing(t *testing.T) {
	app := &millrace.Consumer{Service: "billing", Handler: "charge", Topic: "orders", Group: "billing.charge"}
	if got := middleware.ConsumerOf(millrace.WithConsumer(context.Background(), app)); got != app {
		t.Errorf("ConsumerOf = %+v, want the App's consumer", got)
	}
	if got := middleware.ConsumerOf(context.Background()); *got != (millrace.Consumer{}) {
		t.Errorf("ConsumerOf outside App and router = %+v, want every field empty", got)
	}
}

func TestIdentify_InRouterOverridesTheNames(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := newRouterRig(t)
		poisoned := rig.subscribe("billing.poison")
		delayer := &publishingDelayer{pub: rig.pubSub}
		delayed, err := middleware.NewDelayedRetry(middleware.DelayedRetryConfig{Delays: []time.Duration{time.Minute}}, delayer)
		if err != nil {
			t.Fatal(err)
		}
		var consumers recorder[millrace.Consumer]
		h := rig.router.AddConsumerHandler("charge", "orders", rig.pubSub, func(msg *message.Message) error {
			consumers.add(*middleware.ConsumerOf(msg.Context()))
			return errDown
		})
		h.AddMiddleware(
			middleware.Identify(millrace.Consumer{Service: "billing", Group: "billing.charge"}),
			newPoisonQueue(t, rig.pubSub).Middleware,
			delayed.Middleware,
		)
		rig.run()
		rig.publish("orders", message.NewMessage("o-1", nil))

		p := receive(t, poisoned) // after the one delayed round
		want := millrace.Consumer{Service: "billing", Handler: "charge", Topic: "orders", Group: "billing.charge"}
		if seen := consumers.all(); len(seen) != 2 || seen[0] != want || seen[1] != want {
			t.Errorf("handler saw %+v, want %+v twice: set fields from Identify, the others from the router", seen, want)
		}
		if calls := delayer.scheduled(); len(calls) != 1 || calls[0].topic != "orders" || calls[0].group != "billing.charge" {
			t.Errorf("delayed retry scheduled %+v, want one round on orders for group billing.charge", calls)
		}
		checkMetadata(t, p, map[string]string{
			millrace.MetadataPoisonService:  "billing",
			millrace.MetadataPoisonHandler:  "charge",
			millrace.MetadataPoisonTopic:    "orders",
			millrace.MetadataPoisonGroup:    "billing.charge",
			millrace.MetadataPoisonAttempts: "2",
		})
		noMoreMessages(t, poisoned)
	})
}

func TestIdentify_RestoresTheContext(t *testing.T) {
	msg := newMsg(context.Background())
	_, _ = middleware.Identify(millrace.Consumer{Handler: "charge"})(func(m *message.Message) ([]*message.Message, error) {
		if got := middleware.ConsumerOf(m.Context()).Handler; got != "charge" {
			t.Errorf("inside: handler %q, want charge", got)
		}
		return nil, nil
	})(msg)
	if c := millrace.ConsumerFrom(msg.Context()); c != nil {
		t.Errorf("after the handler the message's context still carries %+v", c)
	}
}

func TestCorrelation_InRouterStampsPublishedMessages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := newRouterRig(t)
		shipments := rig.subscribe("shipments")
		h := rig.router.AddHandler("ship", "orders", rig.pubSub, "shipments", rig.pubSub,
			func(*message.Message) ([]*message.Message, error) {
				return []*message.Message{message.NewMessage("s-1", nil)}, nil
			})
		h.AddMiddleware(middleware.Correlation)
		rig.run()

		order := message.NewMessage("o-1", nil)
		order.Metadata.Set(millrace.MetadataCorrelationID, "checkout-7")
		rig.publish("orders", order)
		checkMetadata(t, receive(t, shipments), map[string]string{
			millrace.MetadataCorrelationID: "checkout-7",
			millrace.MetadataCausationID:   "o-1",
		})

		// An order that starts a flow is its own correlation id.
		rig.publish("orders", message.NewMessage("o-2", nil))
		checkMetadata(t, receive(t, shipments), map[string]string{
			millrace.MetadataCorrelationID: "o-2",
			millrace.MetadataCausationID:   "o-2",
		})
	})
}

func TestRecoverer_InRouterPanicIsPoisonedNotACrash(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := newRouterRig(t)
		poisoned := rig.subscribe("charge.poison")
		h := rig.router.AddConsumerHandler("charge", "orders", rig.pubSub, func(*message.Message) error {
			panic("card reader on fire")
		})
		h.AddMiddleware(newPoisonQueue(t, rig.pubSub).Middleware, middleware.Recoverer)
		rig.run()
		rig.publish("orders", message.NewMessage("o-1", nil))

		p := receive(t, poisoned)
		if reason := p.Metadata.Get(millrace.MetadataPoisonReason); reason != "handler panicked: card reader on fire" {
			t.Errorf("poison reason %q, want the panic", reason)
		}
		checkMetadata(t, p, map[string]string{millrace.MetadataPoisonHandler: "charge"})
	})
}

func TestTimeout_InRouterBoundsEachMessage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := newRouterRig(t)
		type result struct {
			left    time.Duration
			took    time.Duration
			err     error
			handler string
		}
		var handled recorder[result]
		h := rig.router.AddConsumerHandler("charge", "orders", rig.pubSub, func(msg *message.Message) error {
			ctx := msg.Context()
			start := time.Now()
			dl, _ := ctx.Deadline()
			<-ctx.Done() // the downstream hangs
			handled.add(result{dl.Sub(start), time.Since(start), ctx.Err(), message.HandlerNameFromCtx(ctx)})
			return nil
		})
		h.AddMiddleware(middleware.Timeout(5 * time.Second))
		rig.run()
		rig.publish("orders", message.NewMessage("o-1", nil))
		time.Sleep(time.Minute)
		rig.publish("orders", message.NewMessage("o-2", nil))
		time.Sleep(time.Minute)

		want := result{5 * time.Second, 5 * time.Second, context.DeadlineExceeded, "charge"}
		if results := handled.all(); len(results) != 2 || results[0] != want || results[1] != want {
			t.Errorf("handled %+v, want %+v twice: a fresh deadline per message, the router's names kept", results, want)
		}
	})
}

func TestRetry_InRouterRetriesWithinTheDelivery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := newRouterRig(t)
		var logs syncBuffer
		logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{
			Level: slog.LevelDebug,
			ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey {
					return slog.Attr{}
				}
				return a
			},
		}))
		retry := newRetry(t, middleware.RetryConfig{MaxAttempts: 3, InitialInterval: time.Second, Multiplier: 2, MaxInterval: time.Minute},
			middleware.WithLogger(logger))
		var calls recorder[time.Time]
		h := rig.router.AddConsumerHandler("charge", "orders", rig.pubSub, func(msg *message.Message) error {
			calls.add(time.Now())
			if len(calls.all()) <= 2 {
				return errDown
			}
			return nil
		})
		h.AddMiddleware(retry.Middleware)
		rig.run()
		rig.publish("orders", message.NewMessage("o-1", nil))
		time.Sleep(time.Minute)

		if calls := calls.all(); len(calls) != 3 || calls[1].Sub(calls[0]) != time.Second || calls[2].Sub(calls[1]) != 2*time.Second {
			t.Errorf("handler called at %v, want 3 calls 1s and 2s apart", calls)
		}
		wantLogs := `level=DEBUG msg="retrying handler" handler=charge message_id=o-1 attempt=2 after=1s error="downstream unavailable"
level=DEBUG msg="retrying handler" handler=charge message_id=o-1 attempt=3 after=2s error="downstream unavailable"
`
		if logs.String() != wantLogs {
			t.Errorf("logged\n%s\nwant\n%s", logs.String(), wantLogs)
		}
	})
}

func TestDelayedRetry_InRouterSchedulesForTheHandlersTopicAndGroup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := newRouterRig(t)
		delayer := &publishingDelayer{pub: rig.pubSub}
		delayed, err := middleware.NewDelayedRetry(middleware.DelayedRetryConfig{Delays: []time.Duration{10 * time.Second}}, delayer)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		var handled recorder[string] // round@time
		h := rig.router.AddConsumerHandler("charge", "orders", rig.pubSub, func(msg *message.Message) error {
			round := msg.Metadata.Get(millrace.MetadataRetryRounds)
			handled.add(round + "@" + time.Since(start).String())
			if round == "" {
				return errDown
			}
			return nil
		})
		h.AddMiddleware(delayed.Middleware)
		rig.run()
		rig.publish("orders", message.NewMessage("o-1", nil))
		time.Sleep(time.Minute)

		want := []delayCall{{topic: "orders", group: "charge", uuid: "o-1", rounds: "1", delay: 10 * time.Second}}
		if got := delayer.scheduled(); !slices.Equal(got, want) {
			t.Errorf("scheduled %+v, want %+v: the router's topic and the handler's name as group", got, want)
		}
		if want := []string{"@0s", "1@10s"}; !slices.Equal(handled.all(), want) {
			t.Errorf("handled %v, want %v: the original acked, the copy back after 10s", handled.all(), want)
		}
	})
}

func TestPoisonQueue_InRouterNamesTheHandler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := newRouterRig(t)
		poisoned := rig.subscribe("charge.poison")
		retry := newRetry(t, retryConfig(3, time.Second))
		var runs recorder[string]
		h := rig.router.AddConsumerHandler("charge", "orders", rig.pubSub, func(msg *message.Message) error {
			runs.add(msg.UUID)
			return errors.New("card declined")
		})
		h.AddMiddleware(newPoisonQueue(t, rig.pubSub).Middleware, retry.Middleware)
		rig.run()
		order := message.NewMessage("o-1", []byte(`{"order_id":"42"}`))
		rig.publish("orders", order)

		p := receive(t, poisoned)
		if p.UUID != "o-1" || string(p.Payload) != `{"order_id":"42"}` {
			t.Errorf("poisoned %s %s, want the original message", p.UUID, p.Payload)
		}
		checkMetadata(t, p, map[string]string{
			millrace.MetadataPoisonReason:   "after 3 attempts: card declined",
			millrace.MetadataPoisonHandler:  "charge",
			millrace.MetadataPoisonTopic:    "orders",
			millrace.MetadataPoisonGroup:    "charge",
			millrace.MetadataPoisonService:  "charge",
			millrace.MetadataPoisonAttempts: "3",
			millrace.MetadataCorrelationID:  "o-1",
		})
		for _, k := range []string{millrace.MetadataPoisonFirstFailedAt, millrace.MetadataPoisonLastFailedAt} {
			if _, err := time.Parse(time.RFC3339Nano, p.Metadata.Get(k)); err != nil {
				t.Errorf("metadata %s: %v", k, err)
			}
		}
		noMoreMessages(t, poisoned)
		if got := runs.all(); len(got) != 3 {
			t.Errorf("handler ran %d times, want 3: the original is acked once poisoned", len(got))
		}
	})
}

func TestBreaker_InRouterLearnsTheHandlersName(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := newRouterRig(t)
		var changes recorder[string]
		cb := newBreaker(t, breakerConfig(1, 10*time.Second),
			middleware.OnBreakerStateChange(func(name string, from, to gobreaker.State) {
				changes.add(name + ": " + from.String() + " -> " + to.String())
			}))
		start := time.Now()
		var calls recorder[time.Duration]
		h := rig.router.AddConsumerHandler("charge", "orders", rig.pubSub, func(*message.Message) error {
			calls.add(time.Since(start))
			if len(calls.all()) == 1 {
				return errDown // the router nacks; GoChannel redelivers at once
			}
			return nil
		})
		h.AddMiddleware(cb.Middleware)
		rig.run()
		rig.publish("orders", message.NewMessage("o-1", nil))
		time.Sleep(time.Minute)

		if cb.Name() != "charge" {
			t.Errorf("Name() = %q, want the router handler's name", cb.Name())
		}
		want := []string{"charge: closed -> open", "charge: open -> half-open", "charge: half-open -> closed"}
		if got := changes.all(); !slices.Equal(got, want) {
			t.Errorf("state changes %v, want %v", got, want)
		}
		// The redelivery was held by the open breaker, not failed again.
		if handled := calls.all(); len(handled) != 2 || handled[0] != 0 || handled[1] < 10*time.Second || handled[1] > 10*time.Second+time.Millisecond {
			t.Errorf("handled at %v, want at 0 and just after the 10s OpenTimeout", handled)
		}
	})
}

func TestThrottle_InRouterPacesTheHandler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := newRouterRig(t)
		th := newThrottle(t, 10, 1)
		start := time.Now()
		var mu sync.Mutex
		var at []time.Duration
		rec := recordCalls(start, &mu, &at)
		h := rig.router.AddConsumerHandler("charge", "orders", rig.pubSub, func(msg *message.Message) error {
			_, err := rec(msg)
			return err
		})
		h.AddMiddleware(th.Middleware)
		rig.run()
		for _, id := range []string{"o-1", "o-2", "o-3", "o-4", "o-5"} {
			rig.publish("orders", message.NewMessage(id, nil))
		}
		time.Sleep(time.Minute)

		mu.Lock()
		defer mu.Unlock()
		want := []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond, 400 * time.Millisecond}
		if slices.Sort(at); !slices.Equal(at, want) {
			t.Errorf("handled at %v, want %v: 10 a second, handled concurrently by the router", at, want)
		}
	})
}

func TestDedup_InRouterNamespacesByTheHandler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := newRouterRig(t)
		store := middleware.NewMemoryStore(100)
		dedup := newDedup(t, middleware.DefaultDedupConfig(), store) // one instance for both handlers
		var claimed recorder[string]
		record := func(msg *message.Message) error {
			claimed.add(middleware.ClaimFrom(msg.Context()).Key)
			return nil
		}
		for _, name := range []string{"billing", "shipping"} {
			rig.router.AddConsumerHandler(name, "orders", rig.pubSub, record).AddMiddleware(dedup.Middleware)
		}
		rig.run()
		for range 2 { // a duplicate: the same message published twice
			rig.publish("orders", message.NewMessage("o-1", nil))
			synctest.Wait()
		}

		keys := claimed.all()
		if slices.Sort(keys); !slices.Equal(keys, []string{"billing:o-1", "shipping:o-1"}) {
			t.Errorf("handled under keys %v, want each handler once, under its own name", keys)
		}
		if got := store.Len(); got != 2 {
			t.Errorf("store holds %d keys, want 2", got)
		}
	})
}

func TestConsumerOf_AppConsumerWinsOverTheRouter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rig := newRouterRig(t)
		var handlers recorder[string]
		app := func(h message.HandlerFunc) message.HandlerFunc {
			return func(msg *message.Message) ([]*message.Message, error) {
				msg.SetContext(millrace.WithConsumer(msg.Context(), &millrace.Consumer{Handler: "app-charge"}))
				return h(msg)
			}
		}
		rig.router.AddConsumerHandler("charge", "orders", rig.pubSub, func(msg *message.Message) error {
			handlers.add(middleware.ConsumerOf(msg.Context()).Handler)
			return nil
		}).AddMiddleware(app)
		rig.run()
		rig.publish("orders", message.NewMessage("o-1", nil))
		synctest.Wait()
		if got := handlers.all(); !slices.Equal(got, []string{"app-charge"}) {
			t.Errorf("ConsumerOf handler %v, want the App's", got)
		}
	})
}
