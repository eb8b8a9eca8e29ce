package memory

import (
	"strconv"
	"testing"
	"testing/synctest"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
)

func TestMemory_AckedMessagesReleasedAndHistoryBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.Retention = 10
		b, err := New(*cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		s := b.Subscriber("billing")
		ch, err := s.Subscribe(t.Context(), "orders")
		if err != nil {
			t.Fatal(err)
		}
		const n = 1000
		for i := range n {
			m := message.NewMessage(strconv.Itoa(i), []byte("x"))
			m.Metadata.Set(millrace.MetadataPartitionKey, strconv.Itoa(i%7))
			if err := b.Publish("orders", m); err != nil {
				t.Fatal(err)
			}
		}
		for i := range n {
			m := <-ch
			if i%10 == 0 && m.Nack() {
				m = <-ch // the next available message; the nacked one comes back later
			}
			m.Ack()
		}
		synctest.Wait()

		tp := b.topics["orders"]
		tp.mu.Lock()
		defer tp.mu.Unlock()
		if got := len(tp.hist.recs); got != cfg.Retention {
			t.Errorf("topic history holds %d messages, want Retention = %d", got, cfg.Retention)
		}
		g := tp.named["billing"]
		if g.ready.len() != 0 || len(g.keys) != 0 || len(g.delayed) != 0 {
			t.Errorf("group still holds messages after all were acked: %d ready, %d keys, %d delayed",
				g.ready.len(), len(g.keys), len(g.delayed))
		}
	})
}
