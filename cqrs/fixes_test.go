package cqrs_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/millrace/millrace/cqrs"
	"github.com/millrace/millrace/framework"
)

// A handler waiting in Request when shutdown begins still gets its reply:
// the reply subscription stops only once the handlers have drained, so Stop
// takes as long as the remote handler, not the drain timeout.
func TestStop_HandlerWaitingForAReplyGetsIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := broker(t)
		tables, tablesBus := service(t, b, "tables", noStack)
		cqrs.HandleCommandWithReply(tablesBus, func(ctx context.Context, c ReserveTable) (TableReserved, error) {
			time.Sleep(300 * time.Millisecond)
			return TableReserved{Table: "t-" + c.ID}, nil
		})
		start(t, tables)
		front, bus := service(t, b, "front", noStack+"shutdown: {timeout: 10s}\n")
		asked := make(chan struct{})
		type result struct {
			r   TableReserved
			err error
			at  time.Time
		}
		got := make(chan result, 1)
		cqrs.HandleCommand(bus, func(ctx context.Context, c PlaceOrder) error {
			close(asked)
			r, err := cqrs.Request[TableReserved](ctx, bus, ReserveTable{ID: c.ID, Guests: 2})
			got <- result{r, err, time.Now()}
			return err
		})
		start(t, front)
		if err := cqrs.Send(context.Background(), bus, PlaceOrder{ID: "1"}); err != nil {
			t.Fatal(err)
		}
		<-asked
		time.Sleep(20 * time.Millisecond)
		begin := time.Now()
		if err := front.Stop(context.Background()); err != nil {
			t.Errorf("Stop: %v", err)
		}
		took := time.Since(begin)
		r := <-got
		if r.err != nil || r.r.Table != "t-1" {
			t.Errorf("Request during shutdown = %v, %v; want table t-1", r.r, r.err)
		}
		if d := r.at.Sub(begin); d > time.Second {
			t.Errorf("reply came %v after Stop began, want about 280ms", d)
		}
		if took > time.Second {
			t.Errorf("Stop took %v, want about 280ms (shutdown.timeout is 10s)", took)
		}
	})
}

var _ = errors.New
var _ atomic.Int64

// A command sent without a reply address to a handler with replies is
// retried like any command when the handler fails, then poisoned: nobody
// hears the error, so acking it would lose the command.
func TestHandleCommandWithReply_FailedCommandWithoutReplyToIsRetriedThenPoisoned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := broker(t)
		app, bus := service(t, b, "tables", `
middleware:
  retry: {max_attempts: 3}
  delayed_retry: {enabled: false}
  breaker: {enabled: false}
`)
		var calls atomic.Int64
		cqrs.HandleCommandWithReply(bus, func(context.Context, ReserveTable) (TableReserved, error) {
			calls.Add(1)
			return TableReserved{}, errors.New("database unavailable")
		})
		start(t, app)
		if err := cqrs.Send(context.Background(), bus, ReserveTable{ID: "1", Guests: 2}); err != nil {
			t.Fatal(err)
		}
		// Retries back off on the (fake) clock: let it run.
		for end := time.Now().Add(time.Minute); time.Now().Before(end) && len(browse(t, b, "tables.poison")) == 0; {
			time.Sleep(100 * time.Millisecond)
		}
		if n := calls.Load(); n != 3 {
			t.Errorf("handler called %d times, want 3 (retry.max_attempts)", n)
		}
		if p := browse(t, b, "tables.poison"); len(p) != 1 {
			t.Errorf("%d messages poisoned, want 1", len(p))
		}
	})
}

// SkippedEvents counts the bus's event subscriptions alone, not the skips
// of other App handlers.
func TestStats_SkippedEventsCountsOnlyTheBussEventSubscriptions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := broker(t)
		app, bus := service(t, b, "shop", noStack)
		cqrs.HandleEvent(bus, "placed-only", func(context.Context, OrderPlaced) error { return nil })
		framework.Handle(app, "raw-placed", "orders.events", func(context.Context, OrderPlaced) error { return nil },
			framework.MessageTypes("orders.OrderPlaced"))
		start(t, app)
		ctx := context.Background()
		_ = cqrs.Publish(ctx, bus, OrderPlaced{ID: "a"})
		_ = cqrs.Publish(ctx, bus, OrderPaid{ID: "a"})
		synctest.Wait()
		if s := bus.Stats().SkippedEvents; s != 1 {
			t.Errorf("SkippedEvents = %d, want 1 (the bus's subscription's skip, not the App handler's)", s)
		}
	})
}

// In a handler, whose context has the middleware timeout's deadline (60s),
// the bus's shorter RequestTimeout still bounds a request.
func TestRequest_RequestTimeoutAppliesInHandlers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := broker(t)
		app, bus := service(t, b, "front", noStack+"  timeout: 60s\n", cqrs.RequestTimeout(5*time.Second))
		type result struct {
			err  error
			took time.Duration
		}
		got := make(chan result, 1)
		cqrs.HandleCommand(bus, func(ctx context.Context, c PlaceOrder) error {
			begin := time.Now()
			_, err := cqrs.Query[OrderView](ctx, bus, GetOrder{ID: "nobody answers"})
			got <- result{err, time.Since(begin)}
			return nil
		})
		start(t, app)
		if err := cqrs.Send(context.Background(), bus, PlaceOrder{ID: "1"}); err != nil {
			t.Fatal(err)
		}
		r := <-got
		if r.err == nil || !strings.Contains(r.err.Error(), "no reply within 5s") || r.took != 5*time.Second {
			t.Errorf("Query in a handler = %v after %v, want the bus timeout after 5s", r.err, r.took)
		}
	})
}
