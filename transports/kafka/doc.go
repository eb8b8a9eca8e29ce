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
// [Transport.SubscribeEphemeral] reads a topic for this process alone, in no
// consumer group, from the newest offset of every partition at the moment
// it opened ([transports.EphemeralSubscriber]): nothing is committed and no
// group is left on the broker when its context ends or the transport closes.
//
// # Messages from other clients
//
// Any record can be consumed, whoever wrote it (kcat, a Java service, Kafka
// Connect): every header becomes metadata, the value is the payload, a
// record key becomes metadata partition_key and a record timestamp metadata
// published_at (RFC 3339 with nanoseconds, UTC), unless headers of those
// names say otherwise. A record without Watermill's _watermill_message_uuid
// header gets the id "kafka:<topic>/<partition>/<offset>"
// (transports.EnsureUUID), the same on every redelivery. No record is
// unreadable, so none can stop its partition. Records millrace publishes are
// plain Kafka records: the payload as value, the id in header
// _watermill_message_uuid, each metadata key as a header, the partition key
// as record key.
//
// # Binary headers
//
// A header value that is not valid UTF-8 is kept byte for byte in its
// metadata value (a Go string holds any bytes) and written back unchanged
// when the message is published again (Delay, the poison queue, a replay).
// millrace does not base64-encode such values: a marker that says "this is
// encoded" could be mistaken for the text of another client's header, and
// re-encoding would hand handlers and other consumers values that the
// producer never wrote. JSON encoders replace bytes that are not UTF-8, so
// such values do not survive a trip through the SQL transports or a JSON
// log; a producer whose binary headers must go that far encodes them
// itself.
//
// # Operations
//
// Transport.Lag reports a consumer group's backlog per partition, and
// Transport.Browse reads a topic (the poison topic, for the dead-letter
// tools) without consuming it; neither joins a group nor commits.
//
// No call waits for ever on a broker that accepts connections and never
// answers: connect_timeout ([Config.ConnectTimeout], 10s by default) bounds
// every connection's connect, TLS handshake and first answer, so [Open],
// Subscribe, [Transport.SubscribeEphemeral], [Transport.Lag] and
// [Transport.Browse] fail after it, per bootstrap broker, with an error that
// names transport.kafka.connect_timeout and the broker. Requests on
// connections that answered are bounded by 30s each.
//
// # Logs
//
// The transport logs to the Logger of its [transports.Deps]. On a clean run
// it logs nothing at INFO: watermill-kafka's lines that a subscription
// starts and that its consumer ended are logged at DEBUG, with the rest of
// its detail; a consumer that stopped unexpectedly and is started again
// ("Reconnecting consumer", with the cause before it) stays at INFO, and
// errors stay errors.
//
// # Topics
//
// millrace creates no topics: publishing, subscribing and Delay's retry
// topics rely on the brokers' auto.create.topics.enable or on topics
// created beforehand (retry topics with as many partitions as their topic).
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
