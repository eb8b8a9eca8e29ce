// Package memory is an in-process message broker that behaves like a real
// one wherever a handler can tell: services run their handlers on it in
// tests, and in development, without a broker server.
//
// Unlike Watermill's GoChannel it has consumer groups, keeps messages for
// groups that are not consuming, redelivers nacked messages after a growing
// delay instead of at once, and keeps the order of messages that share a
// partition key. It works inside a testing/synctest bubble, where its
// redelivery delays run on the bubble's fake clock.
//
// # Guarantees
//
//   - Groups. Every consumer group receives every message published to a
//     topic. Within a group each message goes to one of the group's live
//     subscriptions: Subscribe calls of the same group compete for its
//     messages. Group "" makes each Subscribe call a group of its own.
//   - Retention. A group that subscribes to a topic for the first time starts
//     with the topic's last Config.Retention messages. A group whose
//     subscriptions have all gone keeps collecting messages until a new
//     subscription of it takes them; an acked message is never delivered to
//     its group again and is released.
//   - At least once. A subscription hands out one message at a time and
//     waits for its Ack or Nack. A nacked message comes back after
//     Config.RedeliveryDelay, doubled on each further nack of that message up
//     to Config.MaxRedeliveryDelay; other messages keep flowing meanwhile. A
//     message that was received but not settled when its Subscriber closes
//     goes back to the group at once. Each delivery is a new message value
//     with the published UUID, payload and metadata.
//   - Order. Messages with the same partition key (metadata
//     millrace.MetadataPartitionKey) are delivered in publish order, and
//     within a group only when no earlier message of that key is unsettled or
//     waiting for redelivery, so a key is handled by one subscription at a
//     time, in order, even across nacks, while different keys run in
//     parallel. Messages without a key go to any free subscription, oldest
//     first. A single subscription receives messages in publish order,
//     redeliveries aside.
//   - Delayed delivery. Broker.Delay (millrace's middleware.Delayer) puts a
//     copy of a message into one group of a topic once a delay has passed,
//     without holding a consumer or the message's key meanwhile; it then
//     joins the group like a message published at that moment to that group
//     alone (the end of its key's order). Close cancels pending delays.
//   - Browsing. Broker.Browse returns copies of a topic's retained messages,
//     oldest first, without consuming them: dead-letter tools read the
//     poison topic this way, as a log.
//   - Publish never waits for consumers. Close ends every subscription and
//     leaves no goroutine behind.
//
// Memory: a topic keeps at most Retention messages for future groups; a
// group keeps the messages it has not acked, without bound.
//
// # Example
//
//	b, err := memory.New(*memory.DefaultConfig(), nil)
//	if err != nil { ... }
//	defer b.Close()
//
//	billing, _ := b.Subscriber("billing").Subscribe(ctx, "orders")
//	shipping, _ := b.Subscriber("shipping").Subscribe(ctx, "orders")
//
//	msg := message.NewMessage(watermill.NewUUID(), []byte(`{"id":"42"}`))
//	msg.Metadata.Set(millrace.MetadataPartitionKey, "42")
//	_ = b.Publish("orders", msg)
//
//	m := <-billing // and the same message on shipping
//	m.Ack()
//
// In an application the broker is opened through the transport registry
// with [Kind], by setting transport.kind to "memory"; [Open] opens one as a
// transports.Transport directly.
package memory
