// Package orders is the quickstart's domain: a command handler that accepts
// orders and publishes an event, and an event handler that notifies the
// customer. Its handlers know nothing of the broker; orders_test.go tests
// them on the in-memory transport with the frameworktest harness.
package orders

import (
	"context"
	"errors"
	"fmt"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/framework"
)

// Topics the quickstart uses.
const (
	CommandsTopic = "orders.commands"
	EventsTopic   = "orders.events"
)

// PlaceOrder asks the service to accept an order.
type PlaceOrder struct {
	OrderID     string `json:"order_id"`
	Customer    string `json:"customer"`
	AmountCents int    `json:"amount_cents"`
}

// OrderPlaced says an order was accepted.
type OrderPlaced struct {
	OrderID     string `json:"order_id"`
	Customer    string `json:"customer"`
	AmountCents int    `json:"amount_cents"`
}

// ErrInvalidOrder is wrapped by the error for an order that can never be
// accepted.
var ErrInvalidOrder = errors.New("invalid order")

// Register adds the quickstart's two handlers to app:
//
//   - "place-order" consumes PlaceOrder from CommandsTopic, validates it and
//     publishes OrderPlaced to EventsTopic, keyed by order id;
//   - "notify-customer" consumes OrderPlaced from EventsTopic and calls
//     notify.
func Register(app *framework.App, notify func(context.Context, OrderPlaced) error) {
	framework.Handle(app, "place-order", CommandsTopic, func(ctx context.Context, cmd PlaceOrder) error {
		if cmd.OrderID == "" || cmd.AmountCents <= 0 {
			return millrace.Permanent(fmt.Errorf("%w: order %q for %d cents", ErrInvalidOrder, cmd.OrderID, cmd.AmountCents))
		}
		framework.Logger(ctx).Info("order accepted", "order_id", cmd.OrderID)
		return app.Publish(ctx, EventsTopic, OrderPlaced(cmd), framework.WithKey(cmd.OrderID))
	})
	framework.Handle(app, "notify-customer", EventsTopic, notify)
}
