package memory_test

import (
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/transports/transporttest"
)

func TestGroups_EachGroupGetsEveryMessage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, nil)
		ctx := t.Context()
		chans := map[string]<-chan *message.Message{
			"billing":  transporttest.Subscribe(t, ctx, b.Subscriber("billing"), "orders"),
			"shipping": transporttest.Subscribe(t, ctx, b.Subscriber("shipping"), "orders"),
			"fan-out":  transporttest.Subscribe(t, ctx, b.Subscriber(""), "orders"),
		}
		want := ids("m", 10)
		publish(t, b, "orders", want...)

		for name, ch := range chans {
			if got := transporttest.ReceiveIDs(t, ch, len(want), wait); !slices.Equal(got, want) {
				t.Errorf("group %s got %v, want %v", name, got, want)
			}
			assertNothing(t, ch)
		}
	})
}

func TestGroups_AnonymousSubscriptionsEachGetEveryMessage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, nil)
		s := b.Subscriber("")
		ch1 := transporttest.Subscribe(t, t.Context(), s, "orders")
		ch2 := transporttest.Subscribe(t, t.Context(), s, "orders")
		want := ids("m", 5)
		publish(t, b, "orders", want...)

		for i, ch := range []<-chan *message.Message{ch1, ch2} {
			if got := transporttest.ReceiveIDs(t, ch, len(want), wait); !slices.Equal(got, want) {
				t.Errorf("subscription %d got %v, want %v", i, got, want)
			}
		}
	})
}

func TestGroup_MembersShareMessages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, nil)
		ctx := t.Context()
		// Four competing consumers: two Subscribe calls on each of two
		// Subscriber values of the same group.
		s1, s2 := b.Subscriber("billing"), b.Subscriber("billing")
		chans := []<-chan *message.Message{
			transporttest.Subscribe(t, ctx, s1, "orders"), transporttest.Subscribe(t, ctx, s1, "orders"),
			transporttest.Subscribe(t, ctx, s2, "orders"), transporttest.Subscribe(t, ctx, s2, "orders"),
		}
		const n = 100
		want := ids("m", n)

		var mu sync.Mutex
		seen := map[string]int{}
		perSub := make([]int, len(chans))
		var wg sync.WaitGroup
		for i, ch := range chans {
			wg.Go(func() {
				for m := range ch {
					time.Sleep(time.Millisecond) // work, on the fake clock
					mu.Lock()
					seen[m.UUID]++
					perSub[i]++
					mu.Unlock()
					m.Ack()
				}
			})
		}
		publish(t, b, "orders", want...)
		synctest.Wait()
		time.Sleep(time.Second)
		synctest.Wait()
		_ = s1.Close()
		_ = s2.Close()
		wg.Wait()

		for _, id := range want {
			if seen[id] != 1 {
				t.Errorf("message %s delivered %d times, want once", id, seen[id])
			}
		}
		if len(seen) != n {
			t.Errorf("got %d distinct messages, want %d", len(seen), n)
		}
		for i, c := range perSub {
			if c != n/len(chans) {
				t.Errorf("subscription %d handled %d messages, want an even share of %d", i, c, n/len(chans))
			}
		}
	})
}

func TestGroup_TopicsAreIndependent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, nil)
		s := b.Subscriber("g")
		orders := transporttest.Subscribe(t, t.Context(), s, "orders")
		payments := transporttest.Subscribe(t, t.Context(), s, "payments")
		publish(t, b, "orders", "o1")
		publish(t, b, "payments", "p1")
		if got := transporttest.ReceiveIDs(t, orders, 1, wait); got[0] != "o1" {
			t.Errorf("orders got %v", got)
		}
		if got := transporttest.ReceiveIDs(t, payments, 1, wait); got[0] != "p1" {
			t.Errorf("payments got %v", got)
		}
		assertNothing(t, orders)
		assertNothing(t, payments)
	})
}
