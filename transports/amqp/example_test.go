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
