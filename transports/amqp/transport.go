package amqp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/millrace/millrace/transports"
)

// errClosed is the error of calls that fail because the transport, or its
// subscriber called, is closed.
var errClosed = fmt.Errorf("amqp: %w", transports.ErrClosed)

// Transport is an open connection to a RabbitMQ (AMQP 0-9-1) broker through
// amqp091-go, with watermill-amqp's message format. It holds three
// connections, named "millrace <id> <purpose>" on the broker: one for
// publishing, one shared by all subscribers (so a publisher blocked by
// broker flow control does not stall consumers), and one, opened on first
// use, for Delay, Retain and Browse. Subscriptions reconnect and resume by
// themselves; the publisher and the third connection dial again on the next
// call after the connection was lost, so calls fail while the broker is
// away and work again when it is back.
//
// Topology: with exchange_type fanout, topic T is a fanout exchange T, and
// consumer group G consumes from the queue "T.G" bound to it; with
// exchange_type topic, every topic is published to one topic exchange with
// the topic as routing key, and "T.G" is bound with T as binding key. Every
// group's queue receives every message; the subscriptions of one group
// compete for the messages of its queue. A queue exists from the first
// Subscribe (or SubscribeInitialize) of its group on: messages published
// before that are not kept for the group (Retain keeps a topic's messages
// for Browse).
//
// [Transport.SubscribeEphemeral] subscribes one process alone, through a
// server-named exclusive queue that the broker deletes when the
// subscription ends ([transports.EphemeralSubscriber]).
//
// Delivery is at least once: a message is acked after the handler acked it;
// a nack, or a subscription closed before ack, requeues it at once.
// A single subscription receives a queue's messages in publish order,
// redeliveries aside.
type Transport struct {
	cfg    Config
	logger watermill.LoggerAdapter
	tlsCfg *tls.Config

	name     string // prefix of the connection names the broker shows
	pubConn  connector
	pub      *publisher
	subConn  connector
	sideConn connector // Delay, Retain, Browse

	// versions holds, per queue, the classic queue version it was found
	// to exist with when that differs from queue.version (see version.go).
	versions sync.Map

	subs transports.Subscribers[*subscriber]

	delay  delayer
	browse sync.Mutex // one Browse at a time: see Browse
}

// Open validates cfg, connects to the broker cfg.URL names, which must be
// reachable, and returns the transport. It logs to deps.Logger. Errors show
// the URL with its password redacted.
func Open(_ context.Context, cfg Config, deps transports.Deps) (*Transport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := &Transport{cfg: cfg, logger: transports.WatermillLogger(deps.Logger), name: "millrace " + watermill.NewShortUUID()}
	t.subs.ErrClosed = errClosed
	tlsCfg, err := cfg.TLS.build()
	if err != nil {
		return nil, err
	}
	t.tlsCfg = tlsCfg

	t.pubConn.dial = func() (*amqp091.Connection, error) { return t.dial("publisher") }
	t.subConn.dial = func() (*amqp091.Connection, error) { return t.dial("subscribers") }
	t.sideConn.dial = func() (*amqp091.Connection, error) { return t.dial("delays, retain and browse") }
	// Dial now, so that a wrong URL fails Open.
	if _, err := t.pubConn.get(); err != nil {
		return nil, err
	}
	t.pub = newPublisher(t)
	t.delay.t = t
	return t, nil
}

// dial opens a connection to the broker for purpose (named in errors).
func (t *Transport) dial(purpose string) (*amqp091.Connection, error) {
	props := amqp091.NewConnectionProperties()
	props["connection_name"] = t.name + " " + purpose
	conn, err := amqp091.DialConfig(t.cfg.URL, amqp091.Config{
		TLSClientConfig: t.tlsCfg,
		Heartbeat:       10 * time.Second,
		Locale:          "en_US",
		Dial:            amqp091.DefaultDial(dialTimeout),
		Properties:      props,
	})
	if err != nil {
		return nil, t.redact("connect for "+purpose, err)
	}
	return conn, nil
}

// dialTimeout bounds connecting to the broker.
const dialTimeout = 10 * time.Second

// marshaler returns the marshaler for the transport's messages.
func (t *Transport) marshaler() marshaler {
	return marshaler{wamqp.DefaultMarshaler{NotPersistentDeliveryMode: !t.cfg.Persistent}}
}

// exchangeName is the exchange topic is published to.
func (t *Transport) exchangeName(topic string) string {
	if t.cfg.ExchangeType == ExchangeTopic {
		return t.cfg.Exchange
	}
	return topic
}

// routingKey is the routing key topic is published with, and the binding
// key its queues are bound with.
func (t *Transport) routingKey(topic string) string {
	if t.cfg.ExchangeType == ExchangeTopic {
		return topic
	}
	return ""
}

// declareExchange declares the exchange name as the transport's exchanges
// are (the same arguments as watermill-amqp's subscribers use).
func (t *Transport) declareExchange(ch *amqp091.Channel, name string) error {
	if err := ch.ExchangeDeclare(name, t.cfg.ExchangeType, t.cfg.Durable, false, false, false, nil); err != nil {
		return fmt.Errorf("declare exchange %s: %w", name, err)
	}
	return nil
}

// queueName is the queue of consumer group group on topic.
func queueName(topic, group string) string { return topic + "." + group }

// Publisher returns the transport's publisher, safe for concurrent use.
// Publish returns after the broker confirmed every message when
// publisher_confirms is on; it fails with ErrNotConfirmed for a message the
// broker refused. While the broker is unreachable Publish fails; the next
// call after it is back reconnects. It is closed by Close.
func (t *Transport) Publisher() message.Publisher { return t.pub }

// Subscriber returns a subscriber of consumer group group, which must not be
// empty. Its subscriptions consume from the queues "<topic>.<group>",
// declaring them (and binding them to the topic's exchange) on Subscribe.
// It implements message.SubscribeInitializer, which declares the queue
// without consuming, so that the group keeps messages from then on. After
// Close, Subscriber fails with an error wrapping [transports.ErrClosed].
func (t *Transport) Subscriber(group string) (message.Subscriber, error) {
	if group == "" {
		return nil, errors.New("amqp: consumer group must not be empty")
	}
	s, err := t.subs.Add(func() (*subscriber, error) { return newSubscriber(t, group), nil })
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Close closes every subscriber the transport made (their subscriptions
// requeue unacked messages), then the publisher and the connections. It is
// safe to call more than once; later calls return nil.
func (t *Transport) Close() error {
	first, err := t.subs.CloseAll()
	if !first {
		return nil
	}
	return errors.Join(err, t.subConn.close(), t.pub.Close(), t.delay.close(), t.sideConn.close())
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
