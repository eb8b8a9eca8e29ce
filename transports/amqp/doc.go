// Package amqp is millrace's RabbitMQ (AMQP 0-9-1) transport: a Watermill
// publisher and subscriber on rabbitmq/amqp091-go that speak watermill-amqp's
// message format (metadata as string headers, the id in header
// _watermill_message_uuid), so services on plain watermill-amqp interoperate.
//
// # Guarantees
//
//   - Groups. Topic T is a fanout exchange T (or, with exchange_type topic,
//     routing key T on one topic exchange). Consumer group G consumes from
//     the durable queue "T.G" bound to it: every group receives every
//     message, and the subscriptions of one group compete for the messages
//     of its queue. A group's queue exists from its first Subscribe (or
//     SubscribeInitialize) on; messages published before are not kept for it.
//   - For one process. Transport.SubscribeEphemeral
//     (transports.EphemeralSubscriber) consumes a server-named, exclusive,
//     auto-deleted queue bound to the topic: it receives what is published
//     after it opened, and the broker deletes the queue when it ends.
//     Request/reply and query replies read each instance's replies this way.
//   - At least once. A message is acked on the broker after the handler
//     acked it; a nack, or closing the subscription first, requeues it at
//     once. Messages are persistent and publishes confirmed by default.
//   - Order. One subscription receives its queue's messages in publish
//     order, redeliveries aside; across several subscriptions of a group
//     there is no order.
//   - Retention. Transport.Retain (transports.Retainer) keeps a topic's
//     messages in the queue "T.retained" before any group subscribed, and
//     Transport.Browse (dlq.Browser) reads them, oldest first, without
//     removing them: this is how the poison topic holds its messages.
//   - Other clients. Metadata travels as string AMQP headers and the id as
//     header _watermill_message_uuid and as the message-id property, so any
//     AMQP client sees both. The envelope sets the matching properties too
//     (content-type, correlation-id, type, app-id, reply-to, timestamp;
//     expiration from MetadataExpiration), and a foreign message's
//     properties are read into those metadata keys. A message from a client
//     that set no _watermill_message_uuid gets the id "amqp:<message-id>",
//     or a random one without message-id; non-string headers arrive as JSON
//     text.
//   - Publishing. Publish is safe for concurrent use; concurrent calls share
//     a few channels and wait only for their own confirms. While the broker
//     is unreachable Publish fails; it reconnects on the next call, so a
//     caller that retries gets through once the broker is back.
//     Subscriptions reconnect and resume by themselves.
//   - Delayed delivery. Transport.Delay (millrace's middleware.Delayer) puts
//     a copy of a message into one group's queue after a delay, by way of a
//     per-delay wait queue whose expired messages RabbitMQ dead-letters into
//     the group's queue.
//   - Secrets. The URL's password never appears in errors or logs.
//
// # Configuration
//
//	transport:
//	  kind: amqp
//	  amqp:
//	    url: amqp://app:${RABBITMQ_PASSWORD}@rabbit:5672/orders
//	    prefetch: 50
//	    exchange_type: topic     # one exchange, routing keys with wildcards:
//	    exchange: orders         # subscribe to "orders.*" or "#"
//	    queue:                   # arguments of every group's queue
//	      max_priority: 10       # x-max-priority; metadata amqp_priority sets a message's
//	      message_ttl: 24h       # x-message-ttl
//	      max_length: 100000     # x-max-length
//	      overflow: reject-publish # x-overflow: drop-head | reject-publish | reject-publish-dlx
//
// RabbitMQ cannot change the arguments of an existing queue: after a change
// of the queue section, Subscribe fails with ErrQueueArguments, naming the
// queue and the argument, until the queue is deleted.
package amqp
