package conformance

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/framework"
)

// shutdownUnderLoad stops an instance in the middle of a backlog, several
// times: the next instance of the service handles everything the first did
// not, and nothing the first did (every ack of a handled message reached
// the broker before the first closed anything).
func (s *suite) shutdownUnderLoad(t *testing.T) {
	const (
		n      = 2000
		rounds = 3
	)
	for round := range rounds {
		t.Run("round-"+strconv.Itoa(round+1), func(t *testing.T) {
			topic, name := fresh("load"), fresh("load")
			var mu sync.Mutex
			handledBy := map[string][]int{} // message id -> instances that acked it
			work := func(context.Context, placeOrder) error {
				time.Sleep(50 * time.Microsecond) // a handler that does a little work
				return nil
			}
			record := func(instance int) framework.ObserverFunc {
				return func(o framework.Outcome) {
					if o.Err == nil && o.Handled {
						mu.Lock()
						handledBy[o.Message.UUID] = append(handledBy[o.Message.UUID], instance)
						mu.Unlock()
					}
				}
			}
			count := func() int {
				mu.Lock()
				defer mu.Unlock()
				return len(handledBy)
			}

			first := s.newService(t, name, "MILLRACE_HANDLERS_CONCURRENCY=8")
			first.App.Observe(record(1))
			framework.Handle(first.App, "work", topic, work)
			first.Start()
			ids := make([]string, n)
			for i := 0; i < n; i += 100 {
				batch := make([]*message.Message, 0, 100)
				for j := i; j < i+100 && j < n; j++ {
					ids[j] = fmt.Sprintf("%s-%d", topic, j)
					m := message.NewMessage(ids[j], []byte(`{"order_id":"`+strconv.Itoa(j)+`"}`))
					m.Metadata.Set("message_type", framework.TypeName(placeOrder{}))
					m.Metadata.Set("partition_key", strconv.Itoa(j%16))
					batch = append(batch, m)
				}
				if err := first.App.PublishMessage(context.Background(), topic, batch...); err != nil {
					t.Fatal(err)
				}
			}
			waitUntil(t, "the first instance to handle a third of the backlog", func() bool { return count() >= n/3 })
			first.Stop() // mid-stream, as SIGTERM

			second := s.newService(t, name, "MILLRACE_HANDLERS_CONCURRENCY=8")
			second.App.Observe(record(2))
			framework.Handle(second.App, "work", topic, work)
			second.Start()
			waitUntil(t, fmt.Sprintf("all %d messages to be handled by the two instances", n), func() bool { return count() == n })
			second.Stop()

			mu.Lock()
			defer mu.Unlock()
			var again []string
			for _, id := range ids {
				by := handledBy[id]
				if len(by) > 1 && by[0] == 1 {
					again = append(again, id)
				}
			}
			if len(again) > 0 {
				t.Errorf("%d messages the first instance had handled (and acked) were delivered again to the next one: %v", len(again), again[:min(len(again), 10)])
			}
		})
	}
}
