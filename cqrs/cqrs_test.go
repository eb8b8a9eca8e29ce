package cqrs_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/cqrs"
	"github.com/millrace/millrace/framework"
	"github.com/millrace/millrace/transports"
)

func TestNaming_TypeVersionTopicAndOverride(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := broker(t)
		app, bus := service(t, b, "shop", noStack, cqrs.Route[OrderView]("views"))
		start(t, app)
		ctx := context.Background()
		if err := cqrs.Send(ctx, bus, PlaceOrder{ID: "o-1"}); err != nil {
			t.Fatal(err)
		}
		if err := cqrs.Publish(ctx, bus, TableReserved{Table: "7"}); err != nil {
			t.Fatal(err)
		}
		if err := cqrs.Publish(ctx, bus, OrderView{ID: "o-1"}); err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct{ topic, typ string }{
			{"orders.commands", "orders.PlaceOrder.v1"}, // MessageType, MessageVersion, MessageTopic
			{"TableReserved", "TableReserved"},          // the Go name, as type and topic
			{"views", "OrderView"},                      // cqrs.Route
		} {
			msgs := browse(t, b, tt.topic)
			if len(msgs) != 1 || msgs[0].Metadata.Get(millrace.MetadataType) != tt.typ {
				t.Errorf("topic %s: %d messages, want one of type %s", tt.topic, len(msgs), tt.typ)
			}
		}
		cmd := browse(t, b, "orders.commands")[0]
		if cmd.Metadata.Get(millrace.MetadataPartitionKey) != "o-1" || cmd.Metadata.Get(millrace.MetadataEntityID) != "o-1" {
			t.Errorf("command metadata %v: want the entity id as partition key and entity_id", cmd.Metadata)
		}
		if got := cqrs.Name[PlaceOrder](); got != "orders.PlaceOrder.v1" {
			t.Errorf("Name[PlaceOrder] = %q", got)
		}
	})
}

func TestCommand_OneHandlerCarriesTheFlow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := broker(t)
		app, bus := service(t, b, "shop", noStack)
		var handled []PlaceOrder
		cqrs.HandleCommand(bus, func(ctx context.Context, c PlaceOrder) error {
			handled = append(handled, c)
			return cqrs.Publish(ctx, bus, OrderPlaced{ID: c.ID})
		})
		var events []*framework.Outcome
		var mu sync.Mutex
		cqrs.HandleEvent(bus, "notify", func(ctx context.Context, e OrderPlaced) error {
			mu.Lock()
			defer mu.Unlock()
			m := framework.Message(ctx)
			events = append(events, &framework.Outcome{Message: m})
			return nil
		})
		start(t, app)
		if err := cqrs.Send(context.Background(), bus, PlaceOrder{ID: "o-1", Total: 30}, framework.WithID("cmd-1")); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if len(handled) != 1 || handled[0].Total != 30 {
			t.Fatalf("handled %v, want the command once", handled)
		}
		if len(events) != 1 {
			t.Fatalf("%d events handled, want 1", len(events))
		}
		md := events[0].Message.Metadata
		if md.Get(millrace.MetadataCorrelationID) != "cmd-1" || md.Get(millrace.MetadataCausationID) != "cmd-1" || md.Get(millrace.MetadataPartitionKey) != "o-1" {
			t.Errorf("event metadata %v: want correlation and causation cmd-1, key o-1", md)
		}
	})
}

func TestCommand_SecondHandlerIsRefusedNamingBoth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		app, bus := service(t, broker(t), "shop", noStack)
		cqrs.HandleCommand(bus, func(context.Context, PlaceOrder) error { return nil })
		cqrs.HandleCommandWithReply(bus, func(context.Context, PlaceOrder) (OrderView, error) { return OrderView{}, nil })
		err := app.Start(context.Background())
		if err == nil {
			t.Fatal("Start succeeded with two handlers of one command")
		}
		for _, want := range []string{"orders.PlaceOrder.v1 has two handlers", "cqrs_test.go:", "exactly one handler"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
		if strings.Count(err.Error(), "cqrs_test.go:") != 2 {
			t.Errorf("error %q should name both registrations", err)
		}
	})
}

func TestCommand_SentBeforeItsServiceEverStartedWaitsForIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := broker(t)
		front, frontBus := service(t, b, "front", noStack)
		start(t, front)
		for i := range 3 {
			if err := cqrs.Send(context.Background(), frontBus, PlaceOrder{ID: fmt.Sprint("o-", i)}); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		// Two instances of the orders service start later and share the
		// commands: each is handled once.
		var handled atomic.Int64
		for range 2 {
			app, bus := service(t, b, "orders", noStack)
			cqrs.HandleCommand(bus, func(context.Context, PlaceOrder) error {
				handled.Add(1)
				return nil
			})
			start(t, app)
		}
		synctest.Wait()
		if handled.Load() != 3 {
			t.Errorf("handled %d commands, want the 3 sent before, once each", handled.Load())
		}
	})
}

func TestEvent_FansOutToEveryHandler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := broker(t)
		shop, shopBus := service(t, b, "shop", noStack)
		var notify, ship, audit atomic.Int64
		cqrs.HandleEvent(shopBus, "notify", func(context.Context, OrderPlaced) error { notify.Add(1); return nil })
		cqrs.HandleEvent(shopBus, "ship", func(context.Context, OrderPlaced) error { ship.Add(1); return nil })
		start(t, shop)
		// Two instances of another service share its handler's events.
		for range 2 {
			app, bus := service(t, b, "audit", noStack)
			cqrs.HandleEvent(bus, "log", func(context.Context, OrderPlaced) error { audit.Add(1); return nil })
			start(t, app)
		}
		for i := range 4 {
			if err := cqrs.Publish(context.Background(), shopBus, OrderPlaced{ID: fmt.Sprint("o-", i)}); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		if notify.Load() != 4 || ship.Load() != 4 || audit.Load() != 4 {
			t.Errorf("notify %d, ship %d, audit %d: want every handler to get all 4 (the audit instances share theirs)", notify.Load(), ship.Load(), audit.Load())
		}
	})
}

func TestEvents_GroupedHandlersSeeOneEntitysEventsInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := broker(t)
		app, bus := service(t, b, "shop", noStack+"handlers: {concurrency: 4}\n")
		var mu sync.Mutex
		seen := map[string][]string{}
		note := func(id, what string) {
			mu.Lock()
			seen[id] = append(seen[id], what)
			mu.Unlock()
		}
		cqrs.HandleEvents(bus, "history", []cqrs.EventHandler{
			cqrs.On(func(_ context.Context, e OrderPlaced) error { note(e.ID, "placed"); return nil }),
			cqrs.On(func(_ context.Context, e OrderPaid) error {
				time.Sleep(time.Duration(e.Seq) * time.Millisecond) // a slow one must not be overtaken
				note(e.ID, fmt.Sprint("paid-", e.Seq))
				return nil
			}),
			cqrs.On(func(_ context.Context, e OrderCancelled) error { note(e.ID, "cancelled"); return nil }),
		})
		start(t, app)
		ctx := context.Background()
		var want []string
		for _, id := range []string{"a", "b", "c"} {
			publish := func(e any) {
				t.Helper()
				var err error
				switch e := e.(type) {
				case OrderPlaced:
					err = cqrs.Publish(ctx, bus, e)
				case OrderPaid:
					err = cqrs.Publish(ctx, bus, e)
				case OrderCancelled:
					err = cqrs.Publish(ctx, bus, e)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			publish(OrderPlaced{ID: id})
			publish(OrderPaid{ID: id, Seq: 30})
			publish(OrderPaid{ID: id, Seq: 1})
			publish(OrderCancelled{ID: id})
		}
		want = []string{"placed", "paid-30", "paid-1", "cancelled"}
		synctest.Wait()
		time.Sleep(time.Second)
		synctest.Wait()
		for _, id := range []string{"a", "b", "c"} {
			if !slices.Equal(seen[id], want) {
				t.Errorf("order %s: handled %v, want %v", id, seen[id], want)
			}
		}
	})
}

func TestEvents_UnknownTypeInAGroupIsSkippedAndCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := broker(t)
		app, bus := service(t, b, "shop", noStack)
		out := record(app)
		var placed atomic.Int64
		cqrs.HandleEvents(bus, "placed-only", []cqrs.EventHandler{
			cqrs.On(func(context.Context, OrderPlaced) error { placed.Add(1); return nil }),
		})
		start(t, app)
		ctx := context.Background()
		_ = cqrs.Publish(ctx, bus, OrderPlaced{ID: "a"})
		_ = cqrs.Publish(ctx, bus, OrderPaid{ID: "a"})
		_ = cqrs.Publish(ctx, bus, OrderCancelled{ID: "a"})
		synctest.Wait()
		if placed.Load() != 1 {
			t.Errorf("placed handled %d, want 1", placed.Load())
		}
		if s := bus.Stats().SkippedEvents; s != 2 {
			t.Errorf("SkippedEvents = %d, want 2", s)
		}
		for _, o := range out.of("placed-only") {
			if o.Err != nil {
				t.Errorf("outcome failed: %v", o.Err)
			}
		}
		if p := browse(t, b, "shop.poison"); len(p) != 0 {
			t.Errorf("%d messages poisoned, want none", len(p))
		}
	})
}

func TestEvents_TypesOnDifferentTopicsAreRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		app, bus := service(t, broker(t), "shop", noStack)
		cqrs.HandleEvents(bus, "mixed", []cqrs.EventHandler{
			cqrs.On(func(context.Context, OrderPlaced) error { return nil }),
			cqrs.On(func(context.Context, TableReserved) error { return nil }),
		})
		err := app.Start(context.Background())
		if err == nil || !strings.Contains(err.Error(), `event type TableReserved is on topic "TableReserved"`) {
			t.Fatalf("Start: %v, want an error naming the type on another topic", err)
		}
	})
}

func TestDecodeFailureGoesToThePoisonQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := broker(t)
		app, bus := service(t, b, "shop", noStack)
		var ran atomic.Bool
		cqrs.HandleCommand(bus, func(context.Context, PlaceOrder) error { ran.Store(true); return nil })
		start(t, app)
		bad := framework.WithMetadata(millrace.MetadataType, "orders.PlaceOrder.v1")
		if err := app.PublishMessage(context.Background(), "orders.commands", newRaw(`{"id": 42}`, bad)); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if ran.Load() {
			t.Error("the handler ran with a payload that does not decode")
		}
		p := browse(t, b, "shop.poison")
		if len(p) != 1 {
			t.Fatalf("%d poisoned, want 1", len(p))
		}
		if r := p[0].Metadata.Get(millrace.MetadataPoisonReason); !strings.Contains(r, "decode orders.PlaceOrder.v1") {
			t.Errorf("poison reason %q, want the decode error", r)
		}
	})
}

func TestRequest_ReplyErrorAndTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := broker(t)
		tables, tablesBus := service(t, b, "tables", noStack)
		var mu sync.Mutex
		var hold chan struct{}
		cqrs.HandleCommandWithReply(tablesBus, func(ctx context.Context, c ReserveTable) (TableReserved, error) {
			mu.Lock()
			h := hold
			mu.Unlock()
			if h != nil {
				<-h
			}
			if c.Guests > 8 {
				_ = cqrs.Publish(ctx, tablesBus, OrderPlaced{ID: "withdrawn"})
				return TableReserved{}, errors.New("no table for more than 8")
			}
			return TableReserved{Table: "t-" + c.ID}, nil
		})
		start(t, tables)
		front, bus := service(t, b, "front", noStack)
		start(t, front)
		ctx := context.Background()

		res, err := cqrs.Request[TableReserved](ctx, bus, ReserveTable{ID: "2", Guests: 4})
		if err != nil || res.Table != "t-2" {
			t.Fatalf("Request = %v, %v; want table t-2", res, err)
		}

		_, err = cqrs.Request[TableReserved](ctx, bus, ReserveTable{ID: "3", Guests: 12})
		var remote *cqrs.RemoteError
		if !errors.As(err, &remote) || remote.Message != "no table for more than 8" {
			t.Errorf("Request error = %v, want the handler's error as a RemoteError", err)
		}
		if len(browse(t, b, "orders.events")) != 0 {
			t.Error("what the failed handler published was sent")
		}

		// A handler that does not answer in time: the caller's deadline
		// ends the wait; the reply that comes later is dropped and counted.
		release := make(chan struct{})
		mu.Lock()
		hold = release
		mu.Unlock()
		tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		start := time.Now()
		_, err = cqrs.Request[TableReserved](tctx, bus, ReserveTable{ID: "4", Guests: 2})
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != 2*time.Second {
			t.Errorf("Request = %v after %v, want the deadline after 2s", err, time.Since(start))
		}
		close(release)
		synctest.Wait()
		if s := bus.Stats(); s.LateReplies != 1 {
			t.Errorf("LateReplies = %d, want 1", s.LateReplies)
		}
		mu.Lock()
		hold = nil
		mu.Unlock()

		// Without a deadline the bus's request timeout bounds the wait.
		front2, bus2 := service(t, b, "front2", noStack, cqrs.RequestTimeout(5*time.Second))
		start2 := time.Now()
		startApp(t, front2)
		_, err = cqrs.Request[OrderView](ctx, bus2, GetOrder{ID: "nobody answers"})
		if err == nil || !strings.Contains(err.Error(), "no reply within 5s") || time.Since(start2) != 5*time.Second {
			t.Errorf("Request = %v after %v, want the bus timeout after 5s", err, time.Since(start2))
		}
	})
}

func TestRequest_TwoInstancesEachGetOnlyTheirOwnReplies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := broker(t)
		tables, tablesBus := service(t, b, "tables", noStack+"handlers: {concurrency: 4}\n")
		cqrs.HandleCommandWithReply(tablesBus, func(ctx context.Context, c ReserveTable) (TableReserved, error) {
			time.Sleep(time.Millisecond)
			return TableReserved{Table: "t-" + c.ID}, nil
		})
		start(t, tables)
		var buses []*cqrs.Bus
		for range 2 {
			app, bus := service(t, b, "front", noStack)
			start(t, app)
			buses = append(buses, bus)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 40)
		for i := range 40 {
			bus := buses[i%2]
			wg.Go(func() {
				id := fmt.Sprint(i)
				res, err := cqrs.Request[TableReserved](context.Background(), bus, ReserveTable{ID: id})
				if err == nil && res.Table != "t-"+id {
					err = fmt.Errorf("request %s got the reply %q", id, res.Table)
				}
				if err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		synctest.Wait() // the other instance may still be reading the last reply
		for i, bus := range buses {
			s := bus.Stats()
			if s.LateReplies != 0 || s.ForeignReplies != 20 {
				t.Errorf("instance %d: %+v, want no late replies and the other's 20 left alone", i, s)
			}
		}
	})
}

func TestQuery_InProcessWhenLocalOverTheTransportWhenNot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := broker(t)
		views, viewsBus := service(t, b, "views", noStack)
		var calls atomic.Int64
		cqrs.HandleQuery(viewsBus, func(ctx context.Context, q GetOrder) (OrderView, error) {
			calls.Add(1)
			if q.ID == "" {
				return OrderView{}, errors.New("no id")
			}
			return OrderView{ID: q.ID, Status: "placed"}, nil
		})
		start(t, views)
		front, frontBus := service(t, b, "front", noStack)
		start(t, front)
		ctx := context.Background()
		before := len(browse(t, b, "GetOrder"))
		local, err := cqrs.Query[OrderView](ctx, viewsBus, GetOrder{ID: "o-1"})
		if err != nil || local.Status != "placed" {
			t.Fatalf("local query = %v, %v", local, err)
		}
		if len(browse(t, b, "GetOrder")) != before {
			t.Error("the local query went over the transport")
		}
		remote, err := cqrs.Query[OrderView](ctx, frontBus, GetOrder{ID: "o-2"})
		if err != nil || remote != (OrderView{ID: "o-2", Status: "placed"}) {
			t.Fatalf("remote query = %v, %v", remote, err)
		}
		if _, err := cqrs.Query[OrderView](ctx, viewsBus, GetOrder{}); err == nil || err.Error() != "no id" {
			t.Errorf("local query error = %v, want the handler's", err)
		}
		var remoteErr *cqrs.RemoteError
		if _, err := cqrs.Query[OrderView](ctx, frontBus, GetOrder{}); !errors.As(err, &remoteErr) {
			t.Errorf("remote query error = %v, want a RemoteError", err)
		}
		if _, err := cqrs.Query[TableReserved](ctx, viewsBus, GetOrder{ID: "x"}); err == nil || !strings.Contains(err.Error(), "answers cqrs_test.OrderView") {
			t.Errorf("query asking for the wrong answer type = %v", err)
		}
		if calls.Load() != 5 {
			t.Errorf("handler ran %d times, want 5", calls.Load())
		}
	})
}

func TestRequest_TenThousandConcurrentRequestsOpenOneReplySubscription(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := broker(t)
		tables, tablesBus := service(t, b, "tables", noStack+"handlers: {concurrency: 8}\n")
		cqrs.HandleCommandWithReply(tablesBus, func(ctx context.Context, c ReserveTable) (TableReserved, error) {
			return TableReserved{Table: "t-" + c.ID}, nil
		})
		start(t, tables)
		var counting *subscriptionCounting
		front, bus := serviceOn(t, b, "front", noStack, func(tr transports.Transport) transports.Transport {
			counting = countSubscriptions(tr)
			return counting
		})
		start(t, front)
		const n = 10000
		var wg sync.WaitGroup
		var failed atomic.Int64
		for i := range n {
			wg.Go(func() {
				id := fmt.Sprint(i)
				res, err := cqrs.Request[TableReserved](context.Background(), bus, ReserveTable{ID: id})
				if err != nil || res.Table != "t-"+id {
					failed.Add(1)
				}
			})
		}
		wg.Wait()
		if failed.Load() != 0 {
			t.Errorf("%d of %d requests failed or got another's reply", failed.Load(), n)
		}
		if got := counting.of("front.replies"); got != 1 {
			t.Errorf("%d subscriptions to the reply topic, want exactly 1", got)
		}
	})
}
