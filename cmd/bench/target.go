package main

import (
	"context"
	stdsql "database/sql"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	_ "github.com/go-sql-driver/mysql" // raw watermill-sql on MySQL
	_ "github.com/jackc/pgx/v5/stdlib" // raw watermill-sql on PostgreSQL
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/millrace/millrace/framework"
	"github.com/millrace/millrace/transports"
	"github.com/millrace/millrace/transports/amqp"
	"github.com/millrace/millrace/transports/kafka"
	"github.com/millrace/millrace/transports/kafka/kafkatest"
	"github.com/millrace/millrace/transports/memory"
	sqltransport "github.com/millrace/millrace/transports/sql"
)

// target is one transport to measure: millrace's config for it, and how to
// build raw Watermill with the adapter's defaults on the same broker.
type target struct {
	name   string
	reg    *transports.Registry
	cfg    *framework.Config
	logger *slog.Logger
	wlog   watermill.LoggerAdapter

	// rawPubSub builds the raw adapter's publisher and a subscriber of
	// consumer group group.
	rawPubSub func(group string) (message.Publisher, message.Subscriber, error)
	// dropQueue, if set, deletes what a measurement left on the broker.
	dropQueue func(topic, group string, raw bool) error
	closers   []func()
}

// drop deletes the queue and exchange a measurement of topic and group
// declared, on brokers that keep them (RabbitMQ), so that runs do not pile
// up durable queues.
func (t *target) drop(topic, group string, raw bool) {
	if t.dropQueue == nil {
		return
	}
	if err := t.dropQueue(topic, group, raw); err != nil {
		t.logger.Warn("bench: could not delete the measurement's queue", "topic", topic, "error", err)
	}
}

func newTarget(_ context.Context, name string, o options, env []string) (*target, error) {
	reg, err := framework.Transports()
	if err != nil {
		return nil, err
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	t := &target{name: name, reg: reg, logger: logger, wlog: watermill.NewSlogLogger(logger)}

	env = append(env, "MILLRACE_TRANSPORT_KIND="+name)
	if name == "kafka" {
		brokers := o.kafkaBrokers
		if brokers == "" {
			c, err := kafkatest.Start(4)
			if err != nil {
				return nil, fmt.Errorf("start in-process Kafka broker: %w", err)
			}
			t.closers = append(t.closers, c.Close)
			brokers = strings.Join(c.ListenAddrs(), ",")
		}
		env = append(env, "MILLRACE_TRANSPORT_KAFKA_BROKERS="+brokers)
	}
	if t.cfg, err = framework.Parse(nil, env, reg); err != nil {
		t.close()
		return nil, err
	}

	switch c := t.cfg.Transport.Section().(type) {
	case *memory.Config:
		// Watermill's in-process Pub/Sub. Persistent is the one change
		// from its defaults: without it, a message published to a topic
		// nobody subscribes to yet is dropped, and the backlog being
		// measured is published before the Router subscribes. GoChannel
		// has no consumer groups: every subscriber receives every message.
		// Its logger is its default (nil: none), not t.wlog: it logs "No
		// subscribers to send message" at info level for every message
		// published before the Router subscribes, and formatting those
		// lines for io.Discard would be counted as GoChannel's cost.
		t.rawPubSub = func(string) (message.Publisher, message.Subscriber, error) {
			ps := gochannel.NewGoChannel(gochannel.Config{Persistent: true}, nil)
			return ps, ps, nil
		}
	case *kafka.Config:
		t.rawPubSub = func(group string) (message.Publisher, message.Subscriber, error) {
			pub, err := wkafka.NewPublisher(wkafka.PublisherConfig{Brokers: c.Brokers, Marshaler: wkafka.DefaultMarshaler{}}, t.wlog)
			if err != nil {
				return nil, nil, err
			}
			sc := wkafka.DefaultSaramaSubscriberConfig()
			sc.Consumer.Offsets.Initial = sarama.OffsetOldest // the backlog is what is measured
			sub, err := wkafka.NewSubscriber(wkafka.SubscriberConfig{
				Brokers: c.Brokers, Unmarshaler: wkafka.DefaultMarshaler{}, ConsumerGroup: group, OverwriteSaramaConfig: sc,
			}, t.wlog)
			if err != nil {
				_ = pub.Close()
				return nil, nil, err
			}
			return pub, sub, nil
		}
	case *amqp.Config:
		t.dropQueue = func(topic, group string, raw bool) error {
			queue := topic + "." + group // millrace's <topic>.<group>
			if raw {
				queue = wamqp.GenerateQueueNameTopicNameWithSuffix(group)(topic)
			}
			conn, err := amqp091.Dial(c.URL)
			if err != nil {
				return err
			}
			defer conn.Close()
			ch, err := conn.Channel()
			if err != nil {
				return err
			}
			if _, err := ch.QueueDelete(queue, false, false, false); err != nil {
				return err
			}
			return ch.ExchangeDelete(topic, false, false)
		}
		t.rawPubSub = func(group string) (message.Publisher, message.Subscriber, error) {
			ac := wamqp.NewDurablePubSubConfig(c.URL, wamqp.GenerateQueueNameTopicNameWithSuffix(group))
			pub, err := wamqp.NewPublisher(ac, t.wlog)
			if err != nil {
				return nil, nil, err
			}
			sub, err := wamqp.NewSubscriber(ac, t.wlog)
			if err != nil {
				_ = pub.Close()
				return nil, nil, err
			}
			return pub, sub, nil
		}
	case *sqltransport.Config:
		driver := "pgx"
		var schema wsql.SchemaAdapter = wsql.DefaultPostgreSQLSchema{}
		var offsets wsql.OffsetsAdapter = wsql.DefaultPostgreSQLOffsetsAdapter{}
		if name == "mysql" {
			driver, schema, offsets = "mysql", wsql.DefaultMySQLSchema{}, wsql.DefaultMySQLOffsetsAdapter{}
		}
		db, err := stdsql.Open(driver, c.DSN)
		if err != nil {
			t.close()
			return nil, err
		}
		t.closers = append(t.closers, func() { _ = db.Close() })
		t.rawPubSub = func(group string) (message.Publisher, message.Subscriber, error) {
			pub, err := wsql.NewPublisher(wsql.BeginnerFromStdSQL(db), wsql.PublisherConfig{SchemaAdapter: schema, AutoInitializeSchema: true}, t.wlog)
			if err != nil {
				return nil, nil, err
			}
			sub, err := wsql.NewSubscriber(wsql.BeginnerFromStdSQL(db), wsql.SubscriberConfig{
				ConsumerGroup: group, SchemaAdapter: schema, OffsetsAdapter: offsets, InitializeSchema: true,
			}, t.wlog)
			if err != nil {
				_ = pub.Close()
				return nil, nil, err
			}
			return pub, sub, nil
		}
	default:
		t.close()
		return nil, fmt.Errorf("no raw Watermill counterpart for config %T", c)
	}
	return t, nil
}

func (t *target) close() {
	for i := len(t.closers) - 1; i >= 0; i-- {
		t.closers[i]()
	}
	t.closers = nil
}
