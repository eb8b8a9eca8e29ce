package millrace

import "context"

// Delivery says where the message being handled came from. The framework
// puts it on every handler's context, so middleware can name the handler,
// topic and group (in poison metadata, dedup keys, breaker names) without
// depending on the framework.
type Delivery struct {
	// Service is the consuming service's name.
	Service string
	// Handler is the handler's name.
	Handler string
	// Topic is the topic the message was consumed from.
	Topic string
	// Group is the consumer group the handler consumes in.
	Group string
}

type deliveryKey struct{}

// WithDelivery returns a context carrying d. The framework calls it once per
// handler, not per message.
func WithDelivery(ctx context.Context, d *Delivery) context.Context {
	return context.WithValue(ctx, deliveryKey{}, d)
}

// DeliveryFrom returns the Delivery on ctx, or nil outside a handler.
func DeliveryFrom(ctx context.Context) *Delivery {
	d, _ := ctx.Value(deliveryKey{}).(*Delivery)
	return d
}
