package orders_test

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"

	"go.uber.org/goleak"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/examples/quickstart/orders"
	"github.com/millrace/millrace/framework/frameworktest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestPlaceOrder_PublishesOrderPlacedAndNotifies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := frameworktest.New(t)
		var notified []orders.OrderPlaced
		orders.Register(h.App, func(_ context.Context, e orders.OrderPlaced) error {
			notified = append(notified, e)
			return nil
		})
		h.Start()

		h.Publish(orders.CommandsTopic, orders.PlaceOrder{OrderID: "o-1", Customer: "ada", AmountCents: 1250})

		placed := frameworktest.WaitPublished[orders.OrderPlaced](h, orders.EventsTopic, 1)
		if placed[0] != (orders.OrderPlaced{OrderID: "o-1", Customer: "ada", AmountCents: 1250}) {
			t.Errorf("placed = %+v", placed[0])
		}
		if key := h.Messages(orders.EventsTopic)[0].Metadata.Get(millrace.MetadataPartitionKey); key != "o-1" {
			t.Errorf("OrderPlaced partition key = %q, want the order id", key)
		}
		frameworktest.WaitConsumed[orders.OrderPlaced](h, "notify-customer", 1)
		if len(notified) != 1 || notified[0].Customer != "ada" {
			t.Errorf("notified %+v", notified)
		}
	})
}

func TestPlaceOrder_InvalidOrderFailsPermanently(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := frameworktest.New(t)
		orders.Register(h.App, func(context.Context, orders.OrderPlaced) error { return nil })
		h.Start()

		h.Publish(orders.CommandsTopic, orders.PlaceOrder{OrderID: "o-2", AmountCents: -5})

		// Permanent: not retried, straight to the poison queue with the reason.
		poisoned := h.WaitPoisoned("place-order", 1)
		if reason := poisoned[0].Metadata.Get(millrace.MetadataPoisonReason); !strings.Contains(reason, "invalid order") {
			t.Errorf("poison reason %q", reason)
		}
		h.WaitUntil("the poisoned command was acked", func() bool { return len(h.Outcomes("place-order")) == 1 })
		if o := h.Outcomes("place-order")[0]; o.Err != nil || o.Handled {
			t.Errorf("outcome %+v: want acked without success", o)
		}
		if n := len(h.Messages(orders.EventsTopic)); n != 0 {
			t.Errorf("%d events published for an invalid order", n)
		}
	})
}
