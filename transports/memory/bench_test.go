package memory_test

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// BenchmarkPublishConsume publishes b.N messages to one topic consumed by one
// group of 1 or 4 subscriptions that ack every message, and reports the
// end-to-end rate.
func BenchmarkPublishConsume(b *testing.B) {
	for _, subs := range []int{1, 4} {
		b.Run("subscriptions="+strconv.Itoa(subs), func(b *testing.B) {
			br := newBroker(b, nil)
			s := br.Subscriber("bench")
			var consumed sync.WaitGroup
			consumed.Add(b.N)
			for range subs {
				ch, err := s.Subscribe(b.Context(), "bench")
				if err != nil {
					b.Fatal(err)
				}
				go func() {
					for m := range ch {
						m.Ack()
						consumed.Done()
					}
				}()
			}
			payload := []byte(`{"order":"42","total":1999}`)
			msgs := make([]*message.Message, b.N)
			for i := range msgs {
				msgs[i] = message.NewMessage(strconv.Itoa(i), payload)
			}

			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for _, m := range msgs {
				if err := br.Publish("bench", m); err != nil {
					b.Fatal(err)
				}
			}
			consumed.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msg/s")
			_ = s.Close()
		})
	}
}
