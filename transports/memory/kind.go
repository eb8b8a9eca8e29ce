package memory

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/transports"
)

var errConfigType = errors.New("memory: config must be a *memory.Config")

// Kind describes the memory transport for a transports.Registry: it is
// selected by transport.kind "memory", configured by the section
// transport.memory (a *Config) and opened as a new, empty Broker.
func Kind() transports.Kind {
	return transports.Kind{
		Name:          "memory",
		DefaultConfig: func() any { return DefaultConfig() },
		Open:          open,
	}
}

func open(_ context.Context, cfg any, deps transports.Deps) (transports.Transport, error) {
	c, ok := cfg.(*Config)
	if !ok || c == nil {
		return nil, errConfigType
	}
	logger := deps.Logger
	if logger == nil {
		logger = slog.Default()
	}
	b, err := New(*c, transports.WatermillLogger(logger))
	if err != nil {
		return nil, err
	}
	return transport{b}, nil
}

// transport adapts a Broker to transports.Transport. Its publisher is the
// broker itself, so closing the publisher closes the broker, like Close. It
// also has the broker's Delay (middleware.Delayer) and Browse (the
// dead-letter tools' dlq.Browser).
type transport struct{ b *Broker }

func (t transport) Publisher() message.Publisher { return t.b }

func (t transport) Subscriber(group string) (message.Subscriber, error) {
	t.b.mu.RLock()
	closed := t.b.closed
	t.b.mu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	return t.b.Subscriber(group), nil
}

func (t transport) Close() error { return t.b.Close() }

// Delay is Broker.Delay.
func (t transport) Delay(ctx context.Context, topic, group string, msg *message.Message, delay time.Duration) error {
	return t.b.Delay(ctx, topic, group, msg, delay)
}

// Browse is Broker.Browse.
func (t transport) Browse(ctx context.Context, topic string) ([]*message.Message, error) {
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
	return transports.Kind{
		Name:          "memory",
		DefaultConfig: func() any { return DefaultConfig() },
		Open: func(context.Context, any, transports.Deps) (transports.Transport, error) {
			b.mu.RLock()
			closed := b.closed
			b.mu.RUnlock()
			if closed {
				return nil, ErrClosed
			}
			return &sharedTransport{transport: transport{b}}, nil
		},
	}
}

// sharedTransport is a service's view of a broker it does not own: the
// broker's transport (Delay, Browse), with a publisher and a Close that
// leave the broker open.
type sharedTransport struct {
	transport

	mu     sync.Mutex
	closed bool
	subs   []*Subscriber
}

func (t *sharedTransport) Publisher() message.Publisher { return sharedPublisher{t.b} }

func (t *sharedTransport) Subscriber(group string) (message.Subscriber, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ErrClosed
	}
	s, err := t.transport.Subscriber(group)
	if err != nil {
		return nil, err
	}
	t.subs = append(t.subs, s.(*Subscriber))
	return s, nil
}

func (t *sharedTransport) Close() error {
	t.mu.Lock()
	subs := t.subs
	t.subs, t.closed = nil, true
	t.mu.Unlock()
	var errs []error
	for _, s := range subs {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

// sharedPublisher publishes on a broker that its Close leaves open.
type sharedPublisher struct{ b *Broker }

func (p sharedPublisher) Publish(topic string, msgs ...*message.Message) error {
	return p.b.Publish(topic, msgs...)
}

func (sharedPublisher) Close() error { return nil }
