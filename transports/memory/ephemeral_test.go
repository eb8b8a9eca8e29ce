package memory_test

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/transports"
	"github.com/millrace/millrace/transports/memory"
	"github.com/millrace/millrace/transports/transporttest"
)

var _ transports.EphemeralSubscriber = (*memory.Transport)(nil)

func TestSubscribeEphemeral_GetsOnlyWhatComesAfterAndLeavesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, nil)
		publish(t, b, "replies", "before")
		ctx, cancel := context.WithCancel(t.Context())
		a, err := b.SubscribeEphemeral(ctx, "replies")
		if err != nil {
			t.Fatal(err)
		}
		other, err := b.SubscribeEphemeral(t.Context(), "replies")
		if err != nil {
			t.Fatal(err)
		}
		publish(t, b, "replies", "after")
		for _, ch := range []<-chan *message.Message{a, other} {
			if got := transporttest.ReceiveIDs(t, ch, 1, wait); !slices.Equal(got, []string{"after"}) {
				t.Errorf("got %v, want only the message published after subscribing", got)
			}
		}
		cancel()
		assertClosed(t, a)
		publish(t, b, "replies", "later")
		if got := transporttest.ReceiveIDs(t, other, 1, wait); !slices.Equal(got, []string{"later"}) {
			t.Errorf("the other subscription got %v", got)
		}
	})
}

func TestSubscribeInitialize_GroupKeepsMessagesBeforeItSubscribes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, func(c *memory.Config) { c.Retention = 1 })
		s := b.Subscriber("orders")
		if err := s.SubscribeInitialize("commands"); err != nil {
			t.Fatal(err)
		}
		publish(t, b, "commands", ids("c", 3)...)
		ch := transporttest.Subscribe(t, t.Context(), b.Subscriber("orders"), "commands")
		if got := transporttest.ReceiveIDs(t, ch, 3, wait); !slices.Equal(got, ids("c", 3)) {
			t.Errorf("got %v, want all three, beyond the retention of 1", got)
		}
		assertNothing(t, ch)
	})
}

var (
	_ transports.Backlogger    = (*memory.Transport)(nil)
	_ transports.HealthChecker = (*memory.Transport)(nil)
)

func TestBacklog_CountsWhatAGroupHasNotAcked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, func(c *memory.Config) { c.Retention = 3 })
		s := b.Subscriber("billing")
		if err := s.SubscribeInitialize("orders"); err != nil {
			t.Fatal(err)
		}
		publish(t, b, "orders", ids("o", 5)...)
		backlog := func(group string) int64 {
			t.Helper()
			n, err := b.Backlog(t.Context(), "orders", group)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		if n := backlog("billing"); n != 5 {
			t.Errorf("backlog %d, want 5", n)
		}
		ch := transporttest.Subscribe(t, t.Context(), s, "orders")
		transporttest.ReceiveIDs(t, ch, 2, wait)
		synctest.Wait()
		if n := backlog("billing"); n != 3 {
			t.Errorf("backlog after two acks %d, want 3", n)
		}
		if n := backlog(""); n != 3 {
			t.Errorf("topic size %d, want the 3 retained", n)
		}
		if n := backlog("nobody"); n != 0 {
			t.Errorf("backlog of a group that never subscribed %d, want 0", n)
		}
	})
}
