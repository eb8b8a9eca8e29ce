package memory_test

import (
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/millrace/millrace/transports/memory"
	"github.com/millrace/millrace/transports/transporttest"
)

func TestNack_RedeliveredAfterDelayNotHotLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, func(c *memory.Config) {
			c.RedeliveryDelay = time.Second
			c.MaxRedeliveryDelay = 5 * time.Second
		})
		ch := transporttest.Subscribe(t, t.Context(), b.Subscriber("billing"), "orders")
		publish(t, b, "orders", "m0")

		m := transporttest.Next(t, ch, wait)
		// Delay after the 1st, 2nd, ... nack: doubling, capped at the max.
		for i, want := range []time.Duration{1 * time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second} {
			nackedAt := time.Now()
			m.Nack()
			assertNothing(t, ch) // not at once: no hot loop
			if time.Since(nackedAt) != 0 {
				t.Fatal("time passed while nothing was pending")
			}

			m = transporttest.Next(t, ch, wait)
			if got := time.Since(nackedAt); got != want {
				t.Errorf("nack %d: redelivered after %v, want exactly %v", i+1, got, want)
			}
			if m.UUID != "m0" || string(m.Payload) != "m0" {
				t.Errorf("nack %d: redelivered %s %q, want m0", i+1, m.UUID, m.Payload)
			}
		}
		m.Ack()
		assertNothing(t, ch)
		time.Sleep(time.Minute)
		assertNothing(t, ch) // acked: gone for good
	})
}

func TestNack_RedeliveryIsFreshCopy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, nil)
		ch := transporttest.Subscribe(t, t.Context(), b.Subscriber("billing"), "orders")
		sent := msg("m0", "k")
		sent.Metadata.Set("a", "1")
		if err := b.Publish("orders", sent); err != nil {
			t.Fatal(err)
		}
		sent.Metadata.Set("a", "changed after publish")
		sent.Payload[0] = 'X'

		first := transporttest.Next(t, ch, wait)
		first.Metadata.Set("a", "changed by handler")
		first.Nack()
		second := transporttest.Next(t, ch, wait)
		if second == first {
			t.Fatal("redelivery reused the nacked message value")
		}
		if second.UUID != "m0" || string(second.Payload) != "m0" || second.Metadata.Get("a") != "1" {
			t.Errorf("redelivered %s %q a=%q, want m0 \"m0\" a=1", second.UUID, second.Payload, second.Metadata.Get("a"))
		}
		if !second.Ack() {
			t.Error("fresh copy cannot be acked")
		}
	})
}

func TestNack_OtherMessagesKeepFlowing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, func(c *memory.Config) { c.RedeliveryDelay = time.Second })
		ch := transporttest.Subscribe(t, t.Context(), b.Subscriber("billing"), "orders")
		publish(t, b, "orders", "m0", "m1", "m2")

		start := time.Now()
		transporttest.Next(t, ch, wait).Nack() // m0, no key: does not hold anything up
		if got := transporttest.ReceiveIDs(t, ch, 2, wait); !slices.Equal(got, []string{"m1", "m2"}) {
			t.Errorf("got %v, want [m1 m2]", got)
		}
		if time.Since(start) != 0 {
			t.Errorf("m1 and m2 waited %v behind the nacked m0", time.Since(start))
		}
		if got := transporttest.ReceiveIDs(t, ch, 1, wait); got[0] != "m0" || time.Since(start) != time.Second {
			t.Errorf("got %v after %v, want m0 after 1s", got, time.Since(start))
		}
	})
}

func TestNack_RedeliveryGoesToAnyMember(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, nil)
		ch1 := transporttest.Subscribe(t, t.Context(), b.Subscriber("billing"), "orders")
		publish(t, b, "orders", "m0")
		m := transporttest.Next(t, ch1, wait)
		ch2 := transporttest.Subscribe(t, t.Context(), b.Subscriber("billing"), "orders")
		synctest.Wait() // ch2 is idle first, ch1 is busy with m0
		m.Nack()
		if got := transporttest.ReceiveIDs(t, ch2, 1, wait); got[0] != "m0" {
			t.Errorf("got %v on the other member, want m0", got)
		}
		assertNothing(t, ch1)
	})
}
