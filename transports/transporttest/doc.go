// Package transporttest holds what the tests of the transports share:
// subscribing for the length of a test, receiving with a deadline,
// checking that nothing arrives, and checking that a closed transport's
// calls fail with an error wrapping [transports.ErrClosed]. Opening a
// transport of one kind stays with that kind's tests.
//
//	ch := transporttest.SubscribeGroup(t, tr, "billing", "orders")
//	if err := tr.Publisher().Publish("orders", msg); err != nil {
//		t.Fatal(err)
//	}
//	got := transporttest.Receive(t, ch, 10*time.Second) // acked
//	transporttest.ExpectNone(t, ch, 200*time.Millisecond)
//
// Inside a testing/synctest bubble the timeouts run on the bubble's clock.
package transporttest
