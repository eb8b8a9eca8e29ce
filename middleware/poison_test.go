package middleware_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/middleware"
)

func ExampleNewPoisonQueue() {
	pubSub := gochannel.NewGoChannel(gochannel.Config{}, nil)
	defer pubSub.Close()
	poisoned, err := pubSub.Subscribe(context.Background(), "orders.poison")
	if err != nil {
		panic(err)
	}

	// The default topic is "<service>.poison".
	poison, err := middleware.NewPoisonQueue(middleware.DefaultPoisonConfig(), pubSub)
	if err != nil {
		panic(err)
	}
	charge := poison.Middleware(func(msg *message.Message) ([]*message.Message, error) {
		return nil, millrace.Permanent(errors.New("card expired"))
	})

	// The App puts the Consumer on the context; a plain router's handler
	// name and topic stand in for it (see ConsumerOf).
	msg := message.NewMessage("m-1", []byte(`{"order_id":"o-42"}`))
	msg.SetContext(millrace.WithConsumer(context.Background(), &millrace.Consumer{
		Service: "orders", Handler: "charge", Topic: "orders.placed", Group: "orders.charge",
	}))
	_, err = charge(msg)
	fmt.Println("handler error after poisoning:", err) // nil: the original is acked

	p := <-poisoned
	p.Ack()
	fmt.Println(p.UUID, string(p.Payload))
	for _, key := range []string{
		millrace.MetadataPoisonReason, millrace.MetadataPoisonService, millrace.MetadataPoisonHandler,
		millrace.MetadataPoisonTopic, millrace.MetadataPoisonGroup, millrace.MetadataPoisonAttempts,
		millrace.MetadataCorrelationID,
	} {
		fmt.Printf("%s: %s\n", key, p.Metadata.Get(key))
	}
	// Output:
	// handler error after poisoning: <nil>
	// m-1 {"order_id":"o-42"}
	// poison_reason: card expired
	// poison_service: orders
	// poison_handler: charge
	// poison_topic: orders.placed
	// poison_group: orders.charge
	// poison_attempts: 1
	// correlation_id: m-1
}
