package framework_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/millrace/millrace/framework"
	"github.com/millrace/millrace/framework/frameworktest"
)

// A handler may fan its publishes out on goroutines (run this with -race);
// a publish on its context after its output was sent goes at once, and one
// after it failed is refused with ErrHandlingFailed.
func TestPublish_FromGoroutinesAndAfterTheHandlerReturned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := frameworktest.New(t, frameworktest.WithConfig(noStack))
		late := make(chan context.Context, 2)
		framework.Handle(h.App, "fanout", "orders", func(ctx context.Context, e OrderPlaced) error {
			var wg sync.WaitGroup
			for i := range 20 {
				wg.Go(func() {
					_ = h.App.Publish(ctx, "invoices", InvoiceSent{OrderID: fmt.Sprintf("%s-%d", e.OrderID, i)})
				})
			}
			wg.Wait()
			select {
			case late <- ctx: // the first attempts' contexts
			default:
			}
			if e.Total < 0 {
				return errors.New("negative total")
			}
			return nil
		})
		h.Start()
		h.Publish("orders", OrderPlaced{OrderID: "o-1", Total: 1})
		frameworktest.WaitConsumed[OrderPlaced](h, "fanout", 1)
		if got := frameworktest.Published[InvoiceSent](h, "invoices"); len(got) != 20 {
			t.Fatalf("published %d invoices, want 20", len(got))
		}
		if err := h.App.Publish(<-late, "invoices", InvoiceSent{OrderID: "late"}); err != nil {
			t.Fatalf("publish after the handler succeeded: %v", err)
		}
		if got := frameworktest.Published[InvoiceSent](h, "invoices"); len(got) != 21 || got[20].OrderID != "late" {
			t.Errorf("published %d invoices (last %+v), want 21, the late one sent at once", len(got), got[len(got)-1])
		}

		h.Publish("orders", OrderPlaced{OrderID: "o-2", Total: -1})
		failedCtx := <-late
		for i := 0; i < 100 && len(h.Failures("fanout")) == 0; i++ {
			time.Sleep(10 * time.Millisecond)
		}
		if err := h.App.Publish(failedCtx, "invoices", InvoiceSent{OrderID: "after failure"}); !errors.Is(err, framework.ErrHandlingFailed) {
			t.Errorf("publish after the handler failed = %v, want ErrHandlingFailed", err)
		}
		if got := frameworktest.Published[InvoiceSent](h, "invoices"); len(got) != 21 {
			t.Errorf("published %d invoices, want still 21", len(got))
		}
	})
}
