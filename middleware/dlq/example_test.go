package dlq_test

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/middleware/dlq"
	"github.com/millrace/millrace/transports/memory"
)

func Example() {
	ctx := context.Background()
	b, _ := memory.New(*memory.DefaultConfig(), nil)
	defer b.Close()

	// What the poison queue would have set aside.
	m := message.NewMessage("m-1", []byte(`{"order_id":"42"}`))
	m.Metadata.Set(millrace.MetadataPoisonHandler, "place-order")
	m.Metadata.Set(millrace.MetadataPoisonTopic, "orders.commands")
	m.Metadata.Set(millrace.MetadataPoisonReason, "inventory: connection refused")
	_ = b.Publish("shop.poison", m)

	entries, _ := dlq.List(ctx, b, "shop.poison", dlq.Filter{ErrorContains: "connection refused"})
	for _, e := range entries {
		fmt.Println(e.Message.UUID, e.Handler, e.Topic, e.Reason)
	}

	report, _ := dlq.Replay(ctx, b, b, "shop.poison", dlq.Filter{Handler: "place-order"})
	for _, r := range report.Replayed {
		fmt.Printf("replayed %s to %s (replay %d)\n", r.ID, r.Topic, r.ReplayCount)
	}
	// Output:
	// m-1 place-order orders.commands inventory: connection refused
	// replayed m-1 to orders.commands (replay 1)
}
