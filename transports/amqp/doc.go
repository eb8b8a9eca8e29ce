// Package amqp is millrace's RabbitMQ (AMQP 0-9-1) transport, built on
// watermill-amqp.
//
// # Guarantees
//
//   - Groups. Topic T is a fanout exchange T (or, with exchange_type topic,
//     routing key T on one topic exchange). Consumer group G consumes from
//     the durable queue "T.G" bound to it: every group receives every
//     message, and the subscriptions of one group compete for the messages
//     of its queue. A group's queue exists from its first Subscribe (or
//     SubscribeInitialize) on; messages published before are not kept for it.
//   - At least once. A message is acked on the broker after the handler
//     acked it; a nack, or closing the subscription first, requeues it at
//     once. Messages are persistent and publishes confirmed by default.
//   - Order. One subscription receives its queue's messages in publish
//     order, redeliveries aside; across several subscriptions of a group
//     there is no order.
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
package amqp
