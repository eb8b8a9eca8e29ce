package amqp_test

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/transports"
	"github.com/millrace/millrace/transports/amqp"
)

// Open a transport, publish to a topic, and consume it in consumer group
// "billing" (queue "orders.billing").
func ExampleOpen() {
	cfg := amqp.DefaultConfig()
	cfg.URL = "amqp://guest:guest@127.0.0.1:5672/"
	tr, err := amqp.Open(context.Background(), *cfg, transports.Deps{})
	if err != nil {
		panic(err)
	}
	defer tr.Close()

	sub, err := tr.Subscriber("billing")
	if err != nil {
		panic(err)
	}
	msgs, err := sub.Subscribe(context.Background(), "orders")
	if err != nil {
		panic(err)
	}
	if err := tr.Publisher().Publish("orders", message.NewMessage(watermill.NewUUID(), []byte(`{"id":1}`))); err != nil {
		panic(err)
	}
	m := <-msgs
	m.Ack()
}

// Keep a dead-letter topic's messages before anyone consumes it, and read
// them without removing them.
func ExampleTransport_Browse() {
	cfg := amqp.DefaultConfig()
	tr, err := amqp.Open(context.Background(), *cfg, transports.Deps{})
	if err != nil {
		panic(err)
	}
	defer tr.Close()

	topic := "example.poison." + watermill.NewShortUUID()
	if err := tr.Retain(context.Background(), topic); err != nil { // queue "<topic>.retained"
		panic(err)
	}
	for _, p := range []string{"first", "second"} {
		if err := tr.Publisher().Publish(topic, message.NewMessage(watermill.NewUUID(), []byte(p))); err != nil {
			panic(err)
		}
	}
	msgs, err := tr.Browse(context.Background(), topic)
	if err != nil {
		panic(err)
	}
	for _, m := range msgs {
		fmt.Println(string(m.Payload))
	}
	// The example's queue and exchange are not needed afterwards.
	cleanUp(topic, amqp.RetainedQueue(topic))
	// Output:
	// first
	// second
}

// Read a topic for this process alone, as request/reply reads its replies:
// the broker names the queue and deletes it when the subscription ends.
func ExampleTransport_SubscribeEphemeral() {
	tr, err := amqp.Open(context.Background(), *amqp.DefaultConfig(), transports.Deps{})
	if err != nil {
		panic(err)
	}
	defer tr.Close()

	topic := "example.replies." + watermill.NewShortUUID()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // ends the subscription; the broker deletes its queue
	replies, err := tr.SubscribeEphemeral(ctx, topic)
	if err != nil {
		panic(err)
	}
	if err := tr.Publisher().Publish(topic, message.NewMessage(watermill.NewUUID(), []byte("42"))); err != nil {
		panic(err)
	}
	m := <-replies
	m.Ack()
	fmt.Println(string(m.Payload))
	cleanUp(topic, "")
	// Output:
	// 42
}

// How many messages wait for consumer group "billing" on topic "orders",
// for an autoscaler or a readiness check.
func ExampleTransport_Backlog() {
	tr, err := amqp.Open(context.Background(), *amqp.DefaultConfig(), transports.Deps{})
	if err != nil {
		panic(err)
	}
	defer tr.Close()

	topic := "example.orders." + watermill.NewShortUUID()
	sub, err := tr.Subscriber("billing")
	if err != nil {
		panic(err)
	}
	if err := sub.(message.SubscribeInitializer).SubscribeInitialize(topic); err != nil { // queue "<topic>.billing"
		panic(err)
	}
	for range 3 {
		if err := tr.Publisher().Publish(topic, message.NewMessage(watermill.NewUUID(), []byte(`{}`))); err != nil {
			panic(err)
		}
	}
	n, err := tr.Backlog(context.Background(), topic, "billing")
	if err != nil {
		panic(err)
	}
	fmt.Println(n, "messages wait")
	cleanUp(topic, topic+".billing")
	// Output:
	// 3 messages wait
}
