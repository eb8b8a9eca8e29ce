package readme

import (
	"context"

	"github.com/millrace/millrace/cqrs"
)

// Choreography: the same flow with no coordinator. Each service reacts to
// the event before it and publishes its own; the undo path is events too.
func RegisterChoreography(bus *cqrs.Bus) {
	cqrs.HandleEvent(bus, "payments.on-order-created", func(ctx context.Context, e OrderCreated) error {
		return cqrs.Publish(ctx, bus, Charged{OrderID: e.OrderID, PaymentID: "p-" + e.OrderID})
	})
	cqrs.HandleEvent(bus, "shipping.on-charged", func(ctx context.Context, e Charged) error {
		return cqrs.Publish(ctx, bus, Shipped{OrderID: e.OrderID, Tracking: "t-" + e.OrderID})
	})
	cqrs.HandleEvent(bus, "orders.on-declined", func(ctx context.Context, e Declined) error {
		return cqrs.Publish(ctx, bus, OrderCanceled{OrderID: e.OrderID})
	})
}
