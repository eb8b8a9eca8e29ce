package memory_test

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/transports/memory"
	"github.com/millrace/millrace/transports/transporttest"
)

func TestKeyOrder_PreservedAcrossConcurrentSubscriptionsAndNacks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, func(c *memory.Config) {
			c.RedeliveryDelay = 10 * time.Millisecond
			c.MaxRedeliveryDelay = 80 * time.Millisecond
		})
		const (
			keys        = 8
			perKey      = 30
			subscribers = 4
		)
		s1, s2 := b.Subscriber("billing"), b.Subscriber("billing")
		var chans []<-chan *message.Message
		for i := range subscribers {
			s := s1
			if i%2 == 1 {
				s = s2
			}
			chans = append(chans, transporttest.Subscribe(t, t.Context(), s, "orders"))
		}

		var (
			mu         sync.Mutex
			acked      = make([][]int, keys) // per key, message indexes in ack order
			busy       = make([]bool, keys)  // per key, a delivery is being handled
			active     int                   // deliveries being handled
			maxActive  int
			nacks      int
			violations []string
			done       = make(chan struct{})
			total      int
		)
		var wg sync.WaitGroup
		for i, ch := range chans {
			rnd := rand.New(rand.NewPCG(uint64(i), 42))
			wg.Go(func() {
				for m := range ch {
					k, _ := strconv.Atoi(m.Metadata.Get(millrace.MetadataPartitionKey))
					idx, _ := strconv.Atoi(m.Metadata.Get("index"))

					mu.Lock()
					if busy[k] {
						violations = append(violations, "key "+strconv.Itoa(k)+" handled by two subscriptions at once")
					}
					if next := len(acked[k]); idx != next {
						violations = append(violations, "key "+strconv.Itoa(k)+": got message "+strconv.Itoa(idx)+" before "+strconv.Itoa(next)+" was acked")
					}
					busy[k] = true
					active++
					maxActive = max(maxActive, active)
					mu.Unlock()

					time.Sleep(time.Millisecond) // work, on the fake clock
					nack := rnd.IntN(4) == 0

					mu.Lock()
					busy[k] = false
					active--
					if nack {
						nacks++
					} else {
						acked[k] = append(acked[k], idx)
						total++
						if total == keys*perKey {
							close(done)
						}
					}
					mu.Unlock()
					if nack {
						m.Nack()
					} else {
						m.Ack()
					}
				}
			})
		}

		for i := range perKey {
			for k := range keys {
				m := msg("k"+strconv.Itoa(k)+"-"+strconv.Itoa(i), strconv.Itoa(k))
				m.Metadata.Set("index", strconv.Itoa(i))
				if err := b.Publish("orders", m); err != nil {
					t.Fatal(err)
				}
			}
		}
		<-done
		_ = s1.Close()
		_ = s2.Close()
		wg.Wait()

		for _, v := range violations {
			t.Error(v)
		}
		want := make([]int, perKey)
		for i := range want {
			want[i] = i
		}
		for k := range keys {
			if !slices.Equal(acked[k], want) {
				t.Errorf("key %d acked in order %v, want %v", k, acked[k], want)
			}
		}
		if nacks == 0 {
			t.Error("no message was nacked; the test proves nothing about nacks")
		}
		if maxActive != subscribers {
			t.Errorf("at most %d keys were handled at once, want %d in parallel", maxActive, subscribers)
		}
		t.Logf("%d nacks, up to %d keys in parallel", nacks, maxActive)
	})
}

func TestKeyOrder_NackedKeyBlocksOnlyItsKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, func(c *memory.Config) { c.RedeliveryDelay = time.Second })
		ch := transporttest.Subscribe(t, t.Context(), b.Subscriber("billing"), "orders")
		for _, m := range []*message.Message{msg("a1", "a"), msg("a2", "a"), msg("b1", "b"), msg("n1", "")} {
			if err := b.Publish("orders", m); err != nil {
				t.Fatal(err)
			}
		}
		start := time.Now()
		transporttest.Next(t, ch, wait).Nack() // a1
		// a2 must wait for a1; b1 and the unkeyed n1 go ahead.
		if got := transporttest.ReceiveIDs(t, ch, 2, wait); !slices.Equal(got, []string{"b1", "n1"}) {
			t.Errorf("got %v, want [b1 n1]", got)
		}
		if got := transporttest.ReceiveIDs(t, ch, 2, wait); !slices.Equal(got, []string{"a1", "a2"}) || time.Since(start) != time.Second {
			t.Errorf("got %v after %v, want [a1 a2] after 1s", got, time.Since(start))
		}
	})
}
