package middleware

import (
	"context"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
)

// ConsumerOf says who is handling the message whose context is ctx. Every
// middleware of this package names things through it: the poison queue's
// handler, topic and default topic, delayed retry's topic and group, dedup's
// key namespace, the breaker's name.
//
// In millrace's App it is the [millrace.Consumer] the App puts on every
// handler's context. In a plain Watermill message.Router, which has no such
// thing, it is made from what the router puts on the context: the handler's
// name (message.HandlerNameFromCtx) and the topic it subscribed to
// (message.SubscribeTopicFromCtx), with the handler's name as consumer group
// and as service too. So in a router, give each handler the name of the
// consumer group its subscriber consumes in, or set the names with
// [Identify]. Outside both, every field is empty.
func ConsumerOf(ctx context.Context) *millrace.Consumer {
	if c := millrace.ConsumerFrom(ctx); c != nil {
		return c
	}
	name := message.HandlerNameFromCtx(ctx)
	return &millrace.Consumer{
		Service: name,
		Handler: name,
		Topic:   message.SubscribeTopicFromCtx(ctx),
		Group:   name,
	}
}

// Identify returns middleware that tells the middleware inside it who is
// handling each message, for a plain Watermill router, where [ConsumerOf]
// otherwise derives every name from the handler's name. Empty fields of c
// are filled as ConsumerOf fills them. Install it outermost:
//
//	h := router.AddConsumerHandler("charge", "payments", sub, charge)
//	h.AddMiddleware(middleware.Identify(millrace.Consumer{Service: "billing", Group: "billing.charge"}), ...)
//
// The App sets the consumer itself; Identify inside the App overrides it.
func Identify(c millrace.Consumer) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			ctx := msg.Context()
			full := c
			derived := ConsumerOf(ctx)
			if full.Handler == "" {
				full.Handler = derived.Handler
			}
			if full.Topic == "" {
				full.Topic = derived.Topic
			}
			if full.Group == "" {
				full.Group = derived.Group
			}
			if full.Service == "" {
				full.Service = derived.Service
			}
			if full.Stopping == nil {
				full.Stopping = derived.Stopping
			}
			msg.SetContext(millrace.WithConsumer(ctx, &full))
			defer msg.SetContext(ctx)
			return h(msg)
		}
	}
}
