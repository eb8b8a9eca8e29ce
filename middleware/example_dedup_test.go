package middleware_test

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/middleware"
)

func ExampleDedup() {
	dedup := middleware.Dedup{
		Store: middleware.NewMemoryStore(10_000),
		Key:   middleware.KeyFromJSONField("order_id"),
	}
	charge := dedup.Middleware(func(msg *message.Message) ([]*message.Message, error) {
		fmt.Printf("charging for %s\n", msg.Payload)
		return nil, nil
	})

	// The same order published twice, under two message ids.
	for _, id := range []string{"m-1", "m-2"} {
		msg := message.NewMessage(id, []byte(`{"order_id":"o-42"}`))
		msg.SetContext(millrace.WithDelivery(context.Background(), &millrace.Delivery{Group: "billing"}))
		if _, err := charge(msg); err != nil {
			fmt.Println(err)
		}
	}
	// Output:
	// charging for {"order_id":"o-42"}
}
