// Package kafka is the Kafka transport: it turns the transport.kafka config
// section into a Watermill publisher and per-consumer-group subscribers
// (watermill-kafka/v3 on Sarama), with defaults tuned for at-least-once
// delivery and per-key order.
//
// # Delivery and order
//
// Publish returns once the broker has the records (acks "all" and an
// idempotent producer by default, so a producer retry neither duplicates nor
// reorders). A message's metadata partition_key (millrace.MetadataPartitionKey)
// becomes its record key: one key's messages land on one partition and a
// group reads them in publish order. Messages without key are spread over
// partitions and carry no order.
//
// Subscriber(group) consumes in Kafka consumer group group; each partition is
// read by one subscription of the group at a time. The offset is committed
// after ack. A nack redelivers the message on the same subscription after
// NackResendSleep, and the messages behind it on its partition wait, so a
// key's order survives failures.
//
// # Delayed redelivery
//
// Transport implements middleware.Delayer with retry topics. Delay(ctx,
// topic, group, msg, d) writes a copy of msg to RetryTopic(topic, group),
// "<topic>.retry.<group>", with metadata retry_due_at. Every Subscribe of
// group also consumes that topic (in Kafka group "<group>.retry") and merges
// it into the same channel, handing each retry over only when it is due: the
// retry topic's partition waits meanwhile, the main topic does not. Other
// groups never see the retry. Retry topics are created by the broker's topic
// auto-creation or must be created beforehand.
//
// # Example
//
//	cfg := kafka.DefaultConfig()
//	cfg.Brokers = []string{"kafka-1:9092", "kafka-2:9092"}
//	tr, err := kafka.Open(ctx, *cfg, transports.Deps{Logger: logger})
//	if err != nil { ... }
//	defer tr.Close()
//	sub, _ := tr.Subscriber("billing.charge")
//	msgs, _ := sub.Subscribe(ctx, "orders.events")
//
// Services normally select it by config (transport.kind: kafka) through a
// transports.Registry holding Kind().
package kafka
