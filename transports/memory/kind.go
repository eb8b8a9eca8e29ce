package memory

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill"
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
	b, err := New(*c, watermill.NewSlogLogger(logger))
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
