package memory

import (
	"context"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/transports"
)

// Kind describes the memory transport for a [transports.Registry]: it is
// selected by transport.kind "memory", configured by the section
// transport.memory (a *[Config], defaults from [DefaultConfig]) and opened
// with [Open], as a new, empty [Broker].
func Kind() transports.Kind {
	return transports.NewKind("memory", DefaultConfig, Open)
}

// Open returns a transport on a new, empty [Broker] configured by cfg, which
// must pass [Config.Validate], logging to deps.Logger. ctx is not used: there is
// nothing to connect to.
func Open(_ context.Context, cfg Config, deps transports.Deps) (*Transport, error) {
	b, err := New(cfg, transports.WatermillLogger(deps.Logger))
	if err != nil {
		return nil, err
	}
	return &Transport{b: b}, nil
}

// Transport is a [Broker] as a [transports.Transport]. Its publisher is the
// broker itself, so closing the publisher closes the broker, like Close. It
// also has the broker's Delay (middleware.Delayer) and Browse (the
// dead-letter tools' dlq.Browser).
type Transport struct{ b *Broker }

// Publisher returns the broker: see [Broker.Publish].
func (t *Transport) Publisher() message.Publisher { return t.b }

// Subscriber returns [Broker.Subscriber](group). After Close it fails with
// an error wrapping [transports.ErrClosed].
func (t *Transport) Subscriber(group string) (message.Subscriber, error) {
	s, err := t.b.subscriber(group)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Close closes the broker: see [Broker.Close].
func (t *Transport) Close() error { return t.b.Close() }

// Delay is [Broker.Delay].
func (t *Transport) Delay(ctx context.Context, topic, group string, msg *message.Message, delay time.Duration) error {
	return t.b.Delay(ctx, topic, group, msg, delay)
}

// Backlog is [Broker.Backlog].
func (t *Transport) Backlog(ctx context.Context, topic, group string) (int64, error) {
	return t.b.Backlog(ctx, topic, group)
}

// CheckHealth reports nil: an in-process broker is always reachable, until
// it is closed.
func (t *Transport) CheckHealth(context.Context) error {
	if t.b.subs.Closed() {
		return errClosed
	}
	return nil
}

// SubscribeEphemeral is [Broker.SubscribeEphemeral].
func (t *Transport) SubscribeEphemeral(ctx context.Context, topic string) (<-chan *message.Message, error) {
	return t.b.SubscribeEphemeral(ctx, topic)
}

// Browse is [Broker.Browse].
func (t *Transport) Browse(ctx context.Context, topic string) ([]*message.Message, error) {
	return t.b.Browse(ctx, topic)
}

// KindOn describes a memory transport on an existing broker b, for running
// several services in one process (an example, a test of services talking
// to each other): every App opened through a registry holding KindOn(b)
// publishes and subscribes on b, as services share a real broker. The
// transport.memory section is validated but not applied (b has its config).
// Closing such a transport closes the subscribers it made, not b: its owner
// closes b when every service stopped.
func KindOn(b *Broker) transports.Kind {
	return transports.NewKind("memory", DefaultConfig, func(context.Context, Config, transports.Deps) (*sharedTransport, error) {
		if b.subs.Closed() {
			return nil, errClosed
		}
		t := &sharedTransport{Transport: &Transport{b: b}}
		t.subs.ErrClosed = errClosed
		return t, nil
	})
}

// sharedTransport is a service's view of a broker it does not own: the
// broker's transport (Delay, Browse), with a publisher and a Close that
// leave the broker open.
type sharedTransport struct {
	*Transport

	subs transports.Subscribers[*Subscriber]
}

func (t *sharedTransport) Publisher() message.Publisher { return sharedPublisher{t.b} }

func (t *sharedTransport) Subscriber(group string) (message.Subscriber, error) {
	s, err := t.subs.Add(func() (*Subscriber, error) { return t.b.subscriber(group) })
	if err != nil {
		return nil, err
	}
	return s, nil
}

// SubscribeEphemeral is [Broker.SubscribeEphemeral], closed with the
// transport.
func (t *sharedTransport) SubscribeEphemeral(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s, err := t.subs.Add(func() (*Subscriber, error) { return t.b.subscriber("") })
	if err != nil {
		return nil, err
	}
	return t.b.ephemeral(ctx, s, topic, func() { t.subs.Remove(s) })
}

func (t *sharedTransport) Close() error {
	_, err := t.subs.CloseAll()
	return err
}

// sharedPublisher publishes on a broker that its Close leaves open.
type sharedPublisher struct{ b *Broker }

func (p sharedPublisher) Publish(topic string, msgs ...*message.Message) error {
	return p.b.Publish(topic, msgs...)
}

func (sharedPublisher) Close() error { return nil }
