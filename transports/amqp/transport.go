package amqp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"

	"github.com/ThreeDotsLabs/watermill"
	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/transports"
)

// ErrClosed is returned by Subscriber and Delay after Close.
var ErrClosed = errors.New("amqp: transport closed")

// Transport is an open connection to a RabbitMQ (AMQP 0-9-1) broker through
// watermill-amqp. It holds three connections: one for publishing, one shared
// by all subscribers (so a publisher blocked by broker flow control does not
// stall consumers), and one, opened on first use, for Delay.
//
// Topology: with exchange_type fanout, topic T is a fanout exchange T, and
// consumer group G consumes from the queue "T.G" bound to it; with
// exchange_type topic, every topic is published to one topic exchange with
// the topic as routing key, and "T.G" is bound with T as binding key. Every
// group's queue receives every message; the subscriptions of one group
// compete for the messages of its queue. A queue exists from the first
// Subscribe (or SubscribeInitialize) of its group on: messages published
// before that are not kept for the group.
//
// Delivery is at least once: a message is acked after the handler acked it;
// a nack, or a subscription closed before ack, requeues it at once.
// A single subscription receives a queue's messages in publish order,
// redeliveries aside.
type Transport struct {
	cfg    Config
	logger watermill.LoggerAdapter
	tlsCfg *tls.Config

	pub     *wamqp.Publisher
	subConn *wamqp.ConnectionWrapper

	mu     sync.Mutex
	closed bool
	subs   []*wamqp.Subscriber

	delay delayer
}

// Open connects to the broker cfg.URL names, which must be reachable, and
// returns the transport. cfg should have passed Validate. logger nil means
// slog.Default(). Errors show the URL with its password redacted.
func Open(_ context.Context, cfg Config, logger *slog.Logger) (*Transport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	t := &Transport{cfg: cfg, logger: watermill.NewSlogLogger(logger)}
	tlsCfg, err := cfg.TLS.build()
	if err != nil {
		return nil, err
	}
	t.tlsCfg = tlsCfg

	pubCfg := t.wamqpConfig("")
	pub, err := wamqp.NewPublisher(pubCfg, t.logger)
	if err != nil {
		return nil, t.redact("open publisher", err)
	}
	subConn, err := wamqp.NewConnection(pubCfg.Connection, t.logger)
	if err != nil {
		_ = pub.Close()
		return nil, t.redact("open subscriber connection", err)
	}
	t.pub, t.subConn = pub, subConn
	t.delay.t = t
	return t, nil
}

// wamqpConfig returns the watermill-amqp config for consumer group group
// ("" for the publisher).
func (t *Transport) wamqpConfig(group string) wamqp.Config {
	c := wamqp.NewDurablePubSubConfig(t.cfg.URL, func(topic string) string { return queueName(topic, group) })
	c.Connection.TLSConfig = t.tlsCfg
	c.Connection.Reconnect = &wamqp.ReconnectConfig{
		BackoffInitialInterval:     t.cfg.ReconnectInitialInterval,
		BackoffRandomizationFactor: 0.5,
		BackoffMultiplier:          1.5,
		BackoffMaxInterval:         t.cfg.ReconnectMaxInterval,
	}
	c.Marshaler = marshaler{wamqp.DefaultMarshaler{NotPersistentDeliveryMode: !t.cfg.Persistent}}
	c.Exchange.Durable = t.cfg.Durable
	c.Queue.Durable = t.cfg.Durable
	if t.cfg.ExchangeType == ExchangeTopic {
		c.Exchange.GenerateName = wamqp.GenerateExchangeNameConstant(t.cfg.Exchange)
		c.Exchange.Type = ExchangeTopic
		c.QueueBind.GenerateRoutingKey = func(topic string) string { return topic }
		c.Publish.GenerateRoutingKey = func(topic string) string { return topic }
	}
	c.Publish.ConfirmDelivery = t.cfg.PublisherConfirms
	c.Publish.ChannelPoolSize = t.cfg.PublisherChannels
	c.Consume.Qos.PrefetchCount = t.cfg.Prefetch
	return c
}

// queueName is the queue of consumer group group on topic.
func queueName(topic, group string) string { return topic + "." + group }

// Publisher returns the transport's publisher. Publish returns after the
// broker confirmed every message when publisher_confirms is on. It is
// closed by Close.
func (t *Transport) Publisher() message.Publisher { return t.pub }

// Subscriber returns a subscriber of consumer group group, which must not be
// empty. Its subscriptions consume from the queues "<topic>.<group>",
// declaring them (and binding them to the topic's exchange) on Subscribe.
// It implements message.SubscribeInitializer, which declares the queue
// without consuming, so that the group keeps messages from then on.
func (t *Transport) Subscriber(group string) (message.Subscriber, error) {
	if group == "" {
		return nil, errors.New("amqp: consumer group must not be empty")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ErrClosed
	}
	s, err := wamqp.NewSubscriberWithConnection(t.wamqpConfig(group), t.logger, t.subConn)
	if err != nil {
		return nil, t.redact("open subscriber", err)
	}
	t.subs = append(t.subs, s)
	return s, nil
}

// Close closes every subscriber the transport made (their subscriptions
// requeue unacked messages), then the publisher and the connections. It is
// safe to call more than once; later calls return nil.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	subs := t.subs
	t.subs = nil
	t.mu.Unlock()

	var errs []error
	for _, s := range subs {
		errs = append(errs, s.Close())
	}
	errs = append(errs, t.subConn.Close(), t.pub.Close(), t.delay.close())
	return errors.Join(errs...)
}

// redact wraps err with what failed and the redacted URL. The error text is
// scrubbed of the URL's password; err is not kept (its chain may quote the
// URL).
func (t *Transport) redact(what string, err error) error {
	msg := err.Error()
	if u, perr := url.Parse(t.cfg.URL); perr == nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, transports.Redacted)
			// The percent-encoded form, as it appears in the URL.
			msg = strings.ReplaceAll(msg, strings.TrimPrefix(url.UserPassword("", pw).String(), ":"), transports.Redacted)
		}
	}
	return fmt.Errorf("amqp: %s at %s: %s", what, t.cfg.redactedURL(), msg)
}

// build returns the TLS client config, or nil when TLS is not enabled.
func (c TLSConfig) build() (*tls.Config, error) {
	if !c.Enabled {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.InsecureSkipVerify} //nolint:gosec // opt-in for tests
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("amqp: tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("amqp: tls.ca_file %s: no PEM certificates found", c.CAFile)
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("amqp: tls.cert_file/key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
