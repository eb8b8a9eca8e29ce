package memory_test

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/transports/memory"
)

// Two consumer groups each receive every message of a topic; a message is
// done for a group once one of the group's subscriptions acks it.
func Example() {
	b, err := memory.New(*memory.DefaultConfig(), watermill.NopLogger{})
	if err != nil {
		panic(err)
	}
	defer b.Close()

	ctx := context.Background()
	billing, _ := b.Subscriber("billing").Subscribe(ctx, "orders")
	shipping, _ := b.Subscriber("shipping").Subscribe(ctx, "orders")

	m := message.NewMessage(watermill.NewUUID(), []byte(`{"order":"42"}`))
	m.Metadata.Set(millrace.MetadataPartitionKey, "42") // orders of one customer stay in order
	if err := b.Publish("orders", m); err != nil {
		panic(err)
	}

	for _, ch := range []<-chan *message.Message{billing, shipping} {
		got := <-ch
		fmt.Println(string(got.Payload), got.UUID == m.UUID)
		got.Ack()
	}
	// Output:
	// {"order":"42"} true
	// {"order":"42"} true
}
