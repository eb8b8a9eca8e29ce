package kafka

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/transports"
)

// NackResendSleep is how long a subscription waits before it redelivers a
// nacked message, so a handler that keeps failing never spins on a
// partition. Longer waits belong to delayed retries (Delay).
const NackResendSleep = 500 * time.Millisecond

// errClosed is the error of calls that fail because the transport, or its
// subscriber called, is closed.
var errClosed = fmt.Errorf("kafka: %w", transports.ErrClosed)

// Transport is an open Kafka connection: one publisher shared by the service
// and a subscriber per consumer group. It also implements
// middleware.Delayer with retry topics (see [Transport.Delay]), the
// dead-letter tools' dlq.Browser (see [Transport.Browse]) and
// [transports.EphemeralSubscriber] (see [Transport.SubscribeEphemeral]), and
// reports consumer lag (see [Transport.Lag]).
type Transport struct {
	cfg       Config
	sarama    *sarama.Config
	ephemeral *sarama.Config // sarama, but partitions are read from the newest offset
	logger    watermill.LoggerAdapter
	pub       *syncPublisher

	subs transports.Subscribers[*subscriber]

	mu   sync.Mutex    // guards meta
	meta sarama.Client // for Lag and Browse; nil until first used; opened only while subs is open
}

// Open validates cfg and connects the publisher; it fails when no broker
// answers, within about connect_timeout per bootstrap broker (see
// [Config.ConnectTimeout]) when they accept connections but stay silent.
// Subscribers connect when they subscribe. It logs to deps.Logger.
func Open(_ context.Context, cfg Config, deps transports.Deps) (*Transport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sc, err := cfg.saramaConfig()
	if err != nil {
		return nil, err
	}
	logger := deps.WithDefaults().Logger
	if cfg.SASL.Mechanism == "plain" && !cfg.TLS.Enabled {
		logger.Warn("kafka: SASL PLAIN without TLS sends the password in the clear; set transport.kafka.tls.enabled")
	}
	if cfg.TLS.Enabled && cfg.TLS.InsecureSkipVerify {
		logger.Warn("kafka: tls.insecure_skip_verify accepts any broker certificate; use it in tests only")
	}
	wl := quietLogger{transports.WatermillLogger(logger)}
	pub, err := newSyncPublisher(cfg.Brokers, sc)
	if err != nil {
		// Sarama's errors name brokers and causes, never the SASL password.
		return nil, fmt.Errorf("kafka: connect publisher to %v: %w", cfg.Brokers, explain(err))
	}
	eph := *sc // a shallow copy shares TLS, SASL and the metric registry
	eph.Consumer.Offsets.Initial = sarama.OffsetNewest
	t := &Transport{cfg: cfg, sarama: sc, ephemeral: &eph, logger: wl, pub: pub}
	t.subs.ErrClosed = errClosed
	return t, nil
}

// Publisher returns the shared publisher. Publish returns once every message
// is written with the configured acks; a message with metadata
// partition_key is written to the partition of that key, so one key's
// messages keep their publish order.
func (t *Transport) Publisher() message.Publisher { return publisher{t} }

// Subscriber returns a subscriber in consumer group group: every group gets
// every message, and each partition is read by one subscription of the group
// at a time, in order. A new group starts at initial_offset. Offsets are
// committed after ack; a nacked message is redelivered on the same
// subscription after NackResendSleep, and the messages behind it on its
// partition wait.
//
// For a non-empty group, each Subscribe(topic) also consumes the group's
// retry topic (RetryTopic, in Kafka consumer group "<group>.retry") and
// hands its messages over when they are due.
// Group "" reads every partition of the topic without a group and without
// committing offsets. After Close, Subscriber fails with an error wrapping
// [transports.ErrClosed].
func (t *Transport) Subscriber(group string) (message.Subscriber, error) {
	s, err := t.subs.Add(func() (*subscriber, error) { return t.newGroupSubscriber(group) })
	if err != nil {
		return nil, err
	}
	return s, nil
}

// newGroupSubscriber makes the subscriber of Subscriber.
func (t *Transport) newGroupSubscriber(group string) (*subscriber, error) {
	s := &subscriber{group: group}
	var err error
	if s.inner, err = t.newSubscriber(group, t.sarama); err != nil {
		return nil, err
	}
	if group != "" {
		if s.retry, err = t.newSubscriber(group+".retry", t.sarama); err != nil {
			_ = s.inner.Close()
			return nil, err
		}
	}
	return s, nil
}

// newSubscriber makes a watermill-kafka subscriber in consumer group group
// (none for "") with Sarama config sc.
func (t *Transport) newSubscriber(group string, sc *sarama.Config) (*wkafka.Subscriber, error) {
	s, err := wkafka.NewSubscriber(wkafka.SubscriberConfig{
		Brokers:               t.cfg.Brokers,
		Unmarshaler:           marshaler{},
		OverwriteSaramaConfig: sc,
		ConsumerGroup:         group,
		NackResendSleep:       NackResendSleep,
		ReconnectRetrySleep:   time.Second,
	}, t.logger)
	if err != nil {
		return nil, fmt.Errorf("kafka: subscriber for group %q: %w", group, err)
	}
	return s, nil
}

// Delay schedules msg for redelivery to group after delay by publishing a
// copy to the group's retry topic, RetryTopic(topic, group), with metadata
// retry_due_at (now + delay). Only subscribers of group read that topic;
// they hand the copy over once it is due. It returns when the copy is
// written, so the caller may then ack the original. The copy keeps msg's
// partition key, so one key's retries stay in order among themselves.
//
// Retry topics are created on first use by the broker's topic
// auto-creation (auto.create.topics.enable), or must be created beforehand
// with as many partitions as their topic.
func (t *Transport) Delay(ctx context.Context, topic, group string, msg *message.Message, delay time.Duration) error {
	if group == "" {
		return errors.New("kafka: delay needs a consumer group")
	}
	if t.subs.Closed() {
		return errClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	cp := message.NewMessage(msg.UUID, msg.Payload)
	cp.Metadata = maps.Clone(msg.Metadata)
	if cp.Metadata == nil {
		cp.Metadata = message.Metadata{}
	}
	cp.Metadata.Set(MetadataRetryDueAt, time.Now().Add(delay).UTC().Format(time.RFC3339Nano))
	if err := t.pub.Publish(RetryTopic(topic, group), cp); err != nil {
		return fmt.Errorf("kafka: delay message %s: %w", msg.UUID, err)
	}
	return nil
}

// Close closes every subscriber the transport made, the client of Lag and
// Browse, then the publisher. It is safe to call more than once; later calls
// return nil.
func (t *Transport) Close() error {
	first, err := t.subs.CloseAll()
	if !first {
		return nil
	}
	// client opens meta only while subs is open, holding mu: from here on
	// it opens none.
	t.mu.Lock()
	meta := t.meta
	t.meta = nil
	t.mu.Unlock()
	errs := []error{err}
	if meta != nil {
		errs = append(errs, meta.Close())
	}
	errs = append(errs, t.pub.Close())
	return errors.Join(errs...)
}

// publisher is the transport's publisher without its Close: the transport
// owns it. Its Publish fails with errClosed once the transport is closed.
type publisher struct{ t *Transport }

func (p publisher) Publish(topic string, msgs ...*message.Message) error {
	err := p.t.pub.Publish(topic, msgs...)
	if err != nil && p.t.subs.Closed() {
		return fmt.Errorf("%w (%w)", errClosed, err)
	}
	return err
}

func (publisher) Close() error { return nil }
