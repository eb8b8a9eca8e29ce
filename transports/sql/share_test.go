package sql_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/transports/transporttest"
)

// Two subscriptions of one group share a topic's messages: each message is
// handled once, by one of them, when nothing fails. (On MySQL no query
// marks each message as consumed; the group's offsets row, locked by the
// batch's SELECT, keeps the second subscription out until the first
// committed.)
func TestGroup_TwoSubscriptionsHandleEachMessageOnce(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			c := testConfig(t, b)
			tr := openTransport(t, b, c)
			const n = 1000
			topic := "shared"
			msgs := make([]*message.Message, n)
			for i := range msgs {
				id := fmt.Sprintf("m%04d", i)
				msgs[i] = message.NewMessage(id, []byte(id))
			}
			if err := tr.Publisher().Publish(topic, msgs...); err != nil {
				t.Fatal(err)
			}
			var (
				mu    sync.Mutex
				seen  = map[string]int{}
				total int
				done  = make(chan struct{})
			)
			for range 2 {
				ch := transporttest.SubscribeGroup(t, tr, "workers", topic)
				go func() {
					for m := range ch {
						mu.Lock()
						seen[m.UUID]++
						total++
						if total == n {
							close(done)
						}
						mu.Unlock()
						m.Ack()
					}
				}()
			}
			select {
			case <-done:
			case <-time.After(60 * time.Second):
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("handled %d of %d messages", total, n)
			}
			// Anything handled twice would arrive within a few polls.
			time.Sleep(10 * c.PollInterval)
			mu.Lock()
			defer mu.Unlock()
			for id, k := range seen {
				if k != 1 {
					t.Errorf("%s handled %d times", id, k)
				}
			}
			if len(seen) != n {
				t.Errorf("%d distinct messages handled, want %d", len(seen), n)
			}
		})
	}
}
