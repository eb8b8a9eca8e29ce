package amqp_test

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
)

// benchPayload is a typical small event.
var benchPayload = []byte(`{"order_id":"7f1c2a9e-5b1d-4c1e-9a51-3f0c2d6e8b47","amount_cents":12999,"currency":"EUR"}`)

// benchPubSub is a publisher and a group subscriber under comparison.
type benchPubSub struct {
	name string
	open func(b *testing.B) (message.Publisher, message.Subscriber)
}

var benchPubSubs = []benchPubSub{
	{"millrace", func(b *testing.B) (message.Publisher, message.Subscriber) {
		tr := openTransport(b, nil)
		sub, err := tr.Subscriber("bench")
		if err != nil {
			b.Fatal(err)
		}
		return tr.Publisher(), sub
	}},
	// watermill-amqp as NewDurablePubSubConfig sets it up: no publisher
	// confirms, a new channel per Publish, prefetch 1.
	{"watermill-amqp", func(b *testing.B) (message.Publisher, message.Subscriber) {
		return openWatermillAMQP(b, func(*wamqp.Config) {})
	}},
	// watermill-amqp with what millrace promises (confirms) and a pool of
	// 8 channels, prefetch 100: how millrace's transport was before it had
	// its own publisher.
	{"watermill-amqp-confirms", func(b *testing.B) (message.Publisher, message.Subscriber) {
		return openWatermillAMQP(b, func(c *wamqp.Config) {
			c.Publish.ConfirmDelivery = true
			c.Publish.ChannelPoolSize = 8
			c.Consume.Qos.PrefetchCount = 100
		})
	}},
}

func openWatermillAMQP(b *testing.B, mutate func(*wamqp.Config)) (message.Publisher, message.Subscriber) {
	c := wamqp.NewDurablePubSubConfig(brokerURL, wamqp.GenerateQueueNameTopicNameWithSuffix("bench"))
	mutate(&c)
	pub, err := wamqp.NewPublisher(c, watermill.NopLogger{})
	if err != nil {
		b.Fatal(err)
	}
	sub, err := wamqp.NewSubscriber(c, watermill.NopLogger{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = sub.Close()
		_ = pub.Close()
	})
	return pub, sub
}

// initBench declares the bench group's queue on a new topic, so published
// messages are routed to a durable queue and stored, and returns the topic.
func initBench(b *testing.B, sub message.Subscriber) string {
	topic := uniqueTopic("bench")
	deleteLater(b, func() []string { return []string{topic + ".bench", topic + "_bench"} }, func() []string { return []string{topic} })
	if err := sub.(message.SubscribeInitializer).SubscribeInitialize(topic); err != nil {
		b.Fatal(err)
	}
	return topic
}

// BenchmarkPublish publishes persistent messages from 32 goroutines per CPU
// to a topic with one durable queue, and reports messages per second.
func BenchmarkPublish(b *testing.B) {
	for _, ps := range benchPubSubs {
		b.Run(ps.name, func(b *testing.B) {
			pub, sub := ps.open(b)
			topic := initBench(b, sub)
			b.SetParallelism(32)
			b.ReportAllocs()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := pub.Publish(topic, message.NewMessage(watermill.NewUUID(), benchPayload)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

// BenchmarkConsume fills a durable queue with b.N messages, then reports
// how many per second one subscription receives and acks.
func BenchmarkConsume(b *testing.B) {
	for _, ps := range benchPubSubs {
		b.Run(ps.name, func(b *testing.B) {
			_, sub := ps.open(b)
			topic := initBench(b, sub)
			fill := openTransport(b, nil).Publisher()
			const batch = 500
			for i := 0; i < b.N; i += batch {
				msgs := make([]*message.Message, min(batch, b.N-i))
				for j := range msgs {
					msgs[j] = message.NewMessage(watermill.NewUUID(), benchPayload)
				}
				if err := fill.Publish(topic, msgs...); err != nil {
					b.Fatal(err)
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			b.ResetTimer()
			start := time.Now()
			ch, err := sub.Subscribe(ctx, topic)
			if err != nil {
				b.Fatal(err)
			}
			for range b.N {
				(<-ch).Ack()
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}
