package middleware_test

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/middleware"
)

func ExampleDedup() {
	cfg := middleware.DefaultDedupConfig()
	cfg.Key = "json:order_id" // one charge per order, whatever the message id
	dedup, err := middleware.NewDedup(cfg, middleware.NewMemoryStore(10_000))
	if err != nil {
		panic(err)
	}
	charge := dedup.Middleware(func(msg *message.Message) ([]*message.Message, error) {
		fmt.Printf("charging for %s under key %s\n", msg.Payload, middleware.ClaimFrom(msg.Context()).Key)
		return nil, nil
	})

	// The same order published twice, under two message ids.
	for _, id := range []string{"m-1", "m-2"} {
		msg := message.NewMessage(id, []byte(`{"order_id":"o-42"}`))
		msg.SetContext(millrace.WithConsumer(context.Background(), &millrace.Consumer{Group: "billing"}))
		if _, err := charge(msg); err != nil {
			fmt.Println(err)
		}
	}
	// Output:
	// charging for {"order_id":"o-42"} under key billing:o-42
}
