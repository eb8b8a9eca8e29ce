package millrace

import "context"

// Consumer says which consumer is handling a message: the service, the
// handler, the topic it consumes and its consumer group. The framework puts
// one on every handler's context, so middleware can name the handler, topic
// and group (in poison metadata, dedup keys, breaker names, delayed
// redeliveries) without depending on the framework.
type Consumer struct {
	// Service is the consuming service's name.
	Service string
	// Handler is the handler's name.
	Handler string
	// Topic is the topic the message was consumed from.
	Topic string
	// Group is the consumer group the handler consumes in.
	Group string
	// Stopping is closed when the service begins to shut down: from then on
	// nothing should wait to start handling a message (a held-back message,
	// a throttled one, a retry's backoff); the message is handed back to the
	// broker instead. A handler already running is left to finish. Nil
	// outside the App: it never closes.
	Stopping <-chan struct{}
}

type consumerKey struct{}

// WithConsumer returns a context carrying c. The framework calls it once per
// handler, not per message.
func WithConsumer(ctx context.Context, c *Consumer) context.Context {
	return context.WithValue(ctx, consumerKey{}, c)
}

// ConsumerFrom returns the Consumer on ctx, or nil when ctx does not carry
// one (outside the App).
func ConsumerFrom(ctx context.Context) *Consumer {
	c, _ := ctx.Value(consumerKey{}).(*Consumer)
	return c
}
