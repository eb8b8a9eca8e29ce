package amqp_test

import (
	"context"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/transports/amqp"
)

// Open a transport, publish to a topic, and consume it in consumer group
// "billing" (queue "orders.billing").
func ExampleOpen() {
	cfg := amqp.DefaultConfig()
	cfg.URL = "amqp://guest:guest@127.0.0.1:5672/"
	tr, err := amqp.Open(context.Background(), *cfg, slog.Default())
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
