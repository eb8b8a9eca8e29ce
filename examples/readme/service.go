package readme

import (
	"context"
	"errors"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/framework"
)

type PlaceOrder struct {
	OrderID string `json:"order_id"`
}
type OrderPlaced struct {
	OrderID string `json:"order_id"`
}

func Register(app *framework.App) {
	framework.Handle(app, "place-order", "orders.commands", func(ctx context.Context, cmd PlaceOrder) error {
		if cmd.OrderID == "" {
			return millrace.Permanent(errors.New("order without id")) // retrying cannot fix this
		}
		return app.Publish(ctx, "orders.events", OrderPlaced(cmd), framework.WithKey(cmd.OrderID))
	}, framework.Concurrency(8))
}
