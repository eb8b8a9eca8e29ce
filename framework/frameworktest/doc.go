// Package frameworktest tests millrace handlers on the in-memory transport,
// in the spirit of MassTransit's test harness and Dogma's testkit: start the
// App inside a test, publish, wait (without sleeps) until something happened,
// and assert with typed helpers on what was published, what each handler
// consumed and what failed.
//
//	func TestPlaceOrder(t *testing.T) {
//		synctest.Test(t, func(t *testing.T) {
//			h := frameworktest.New(t)
//			orders.Register(h.App)
//			h.Start()
//
//			h.Publish("orders.commands", orders.PlaceOrder{ID: "o-1"})
//
//			placed := frameworktest.WaitPublished[orders.OrderPlaced](h, "orders.events", 1)
//			if placed[0].ID != "o-1" { t.Errorf(...) }
//		})
//	}
//
// Run inside testing/synctest's bubble, the harness controls time: redelivery
// delays, backoff and handler timeouts run on the bubble's fake clock,
// Advance moves it, and a Wait that can no longer succeed fails at once
// instead of after its timeout in real time. Outside a bubble it works too,
// on real time.
package frameworktest
