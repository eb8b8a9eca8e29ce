package memory_test

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"

	"github.com/millrace/millrace/transports/memory"
	"github.com/millrace/millrace/transports/transporttest"
)

func TestRetention_LateGroupGetsHistory(t *testing.T) {
	tests := []struct {
		name      string
		retention int
		want      []string // what a group subscribing after m0..m4 were published gets first
	}{
		{name: "all retained", retention: 10, want: ids("m", 5)},
		{name: "exactly retained", retention: 5, want: ids("m", 5)},
		{name: "bounded by retention", retention: 2, want: []string{"m3", "m4"}},
		{name: "no retention", retention: 0, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newBroker(t, func(c *memory.Config) { c.Retention = tt.retention })
				publish(t, b, "orders", ids("m", 5)...)

				ch := transporttest.Subscribe(t, t.Context(), b.Subscriber("late"), "orders")
				publish(t, b, "orders", "new")

				want := append(slices.Clone(tt.want), "new")
				if got := transporttest.ReceiveIDs(t, ch, len(want), wait); !slices.Equal(got, want) {
					t.Errorf("got %v, want %v", got, want)
				}
				assertNothing(t, ch)
			})
		})
	}
}

func TestRetention_ExistingGroupGetsNoHistoryAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, nil)
		publish(t, b, "orders", "m0", "m1")
		s := b.Subscriber("billing")
		ch := transporttest.Subscribe(t, t.Context(), s, "orders")
		transporttest.ReceiveIDs(t, ch, 2, wait)
		_ = s.Close()

		// The group exists now: a new member continues where it stopped.
		publish(t, b, "orders", "m2")
		ch = transporttest.Subscribe(t, t.Context(), b.Subscriber("billing"), "orders")
		if got := transporttest.ReceiveIDs(t, ch, 1, wait); got[0] != "m2" {
			t.Errorf("got %v, want [m2]", got)
		}
		assertNothing(t, ch)
	})
}

func TestRetention_GroupWithoutConsumersKeepsBacklog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Retention 0: only the group itself can keep the messages.
		b := newBroker(t, func(c *memory.Config) { c.Retention = 0 })
		ctx, cancel := context.WithCancel(t.Context())
		ch := transporttest.Subscribe(t, ctx, b.Subscriber("billing"), "orders")
		publish(t, b, "orders", "m0", "m1")
		if got := transporttest.ReceiveIDs(t, ch, 1, wait); got[0] != "m0" {
			t.Fatalf("got %v, want [m0]", got)
		}
		cancel()
		assertClosed(t, ch)

		publish(t, b, "orders", "m2", "m3")
		ch = transporttest.Subscribe(t, t.Context(), b.Subscriber("billing"), "orders")
		want := []string{"m1", "m2", "m3"} // m0 was acked: never again
		if got := transporttest.ReceiveIDs(t, ch, len(want), wait); !slices.Equal(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
		assertNothing(t, ch)
	})
}
