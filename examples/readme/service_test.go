package readme

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/millrace/millrace/framework/frameworktest"
)

func TestPlaceOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) { // fake clock: delays and timeouts take no real time
		h := frameworktest.New(t)
		Register(h.App)
		h.Start()

		h.Publish("orders.commands", PlaceOrder{OrderID: "o-1"})

		placed := frameworktest.WaitPublished[OrderPlaced](h, "orders.events", 1)
		if placed[0].OrderID != "o-1" {
			t.Errorf("placed %+v", placed[0])
		}
		h.Publish("orders.commands", PlaceOrder{}) // invalid: poisoned at once, never retried
		h.WaitPoisoned("place-order", 1)
		h.Advance(time.Minute) // move the fake clock, e.g. past a redelivery delay
	})
}
