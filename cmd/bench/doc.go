// Command bench measures publish and consume throughput of millrace's
// transports against raw Watermill with its adapters' default config, in
// one run, on the brokers of the machine it runs on.
//
//	go run ./cmd/bench -transport amqp
//	go run ./cmd/bench -transport all -n 20000 -publishers 16 -batch 100
//	go run ./cmd/bench -help
//
// For each transport (memory, kafka, amqp, postgres, mysql; -transport all
// measures them all, in this order) it runs two sides:
//
//   - raw: the Watermill adapter built with its documented defaults
//     (Watermill's own in-process GoChannel for memory, watermill-kafka's
//     default Sarama configs, watermill-amqp's NewDurablePubSubConfig,
//     watermill-sql's default schema and offsets adapter), published
//     through Publisher.Publish and consumed by a Watermill Router with a
//     no-op handler and no middleware. The changes: the raw Kafka consumer
//     starts from the oldest offset (Sarama's default, newest, would skip
//     the backlog being measured), and GoChannel is Persistent (by default
//     it drops a message published to a topic nobody subscribes to yet;
//     persistent, it keeps every message and hands the backlog to the
//     Router's subscription, starting a goroutine per message). A second raw
//     row sends the same messages with the metadata of millrace's envelope
//     (type, correlation id, publisher, time, content type), so that it and
//     the millrace row compare like with like.
//   - millrace: the transport as a service gets it from config (defaults,
//     plus MILLRACE_TRANSPORT_* variables of the environment), published
//     with App.Publish (JSON encoding and envelope included) and consumed by
//     an App with a no-op typed handler behind the full default middleware
//     stack (correlation, poison queue, delayed and immediate retries,
//     breaker, dedup in memory, timeout, recoverer).
//
// On RabbitMQ a third side shows the broker's own ceiling: amqp091-go with
// no framework, -batch messages per round from -publishers goroutines,
// persistent and confirmed, into one durable queue, then drained with
// prefetch 250 and one ack per 60 messages.
//
// Publish throughput is n messages from -publishers goroutines, one message
// per call; with -batch B > 1, further rows publish B messages per call
// (one INSERT on SQL, one produce request on Kafka). Every row publishes to
// a topic the consumer group already keeps (on RabbitMQ, a durable queue
// bound before publishing: a message to an exchange without queues is
// dropped, and confirmed, at once; on millrace's memory broker, a group
// created before publishing: a new group would start with only the last
// transport.memory.retention messages, 10,000 by default). Consume
// throughput is the drain of that
// backlog, from the first message handled to the last, so consumer group
// joins and connection setup are not counted. The RabbitMQ queues and
// exchanges of a run are deleted at its end.
//
// Memory runs in the bench's process, each measurement on a broker of its
// own. Kafka runs against an in-process Kafka-protocol broker (kfake)
// unless -kafka-brokers names real ones. The other brokers come from the
// usual config: MILLRACE_TRANSPORT_AMQP_URL, MILLRACE_TRANSPORT_POSTGRES_DSN,
// MILLRACE_TRANSPORT_MYSQL_DSN, or their defaults (localhost).
//
// Exit status: 0 when every measurement succeeded and for -help, 1
// otherwise.
package main
