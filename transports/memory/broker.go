package memory

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/transports"
)

// errClosed is the error of Publish, Subscribe, Delay and Browse once the
// broker or the subscriber has been closed.
var errClosed = fmt.Errorf("memory: %w", transports.ErrClosed)

var errNilMessage = errors.New("memory: publish: nil message")

// Broker is an in-process message broker with consumer groups, retention,
// delayed redelivery and per-key ordering (see the package doc for the exact
// guarantees). It is the memory transport's publisher; subscribers come from
// Subscriber.
//
// A Broker is safe for concurrent use. It keeps every group's unacked
// messages in memory until they are acked, however long the group has no
// consumer, like a durable queue.
type Broker struct {
	cfg    Config
	logger watermill.LoggerAdapter

	mu     sync.RWMutex
	closed bool
	topics map[string]*topic

	subs transports.Subscribers[*Subscriber] // closed by Close, after closed is set
}

var _ message.Publisher = (*Broker)(nil)

// New returns a broker configured by cfg, which must pass Validate; start
// from DefaultConfig. A nil logger discards log lines.
func New(cfg Config, logger watermill.LoggerAdapter) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	b := &Broker{cfg: cfg, logger: logger, topics: make(map[string]*topic)}
	b.subs.ErrClosed = errClosed
	return b, nil
}

// Publish stores msgs on topic, in order, and returns without waiting for
// any consumer. Every consumer group of the topic will receive each message
// (groups created later receive it too while it is among the topic's last
// Retention messages).
//
// The broker keeps a snapshot of each message (UUID, a copy of the payload,
// a copy of the metadata): the caller may reuse or change msgs afterwards.
// The message context is not carried to consumers. After Close, Publish
// fails with an error wrapping [transports.ErrClosed].
func (b *Broker) Publish(topic string, msgs ...*message.Message) error {
	t, err := b.topic(topic)
	if err != nil {
		return err
	}
	if len(msgs) == 1 {
		r, err := snapshot(msgs[0])
		if err != nil {
			return err
		}
		return t.publish(r)
	}
	rs := make([]*record, len(msgs))
	for i, m := range msgs {
		if rs[i], err = snapshot(m); err != nil {
			return err
		}
	}
	return t.publishAll(rs)
}

// snapshot copies what the broker keeps of m.
func snapshot(m *message.Message) (*record, error) {
	if m == nil {
		return nil, errNilMessage
	}
	r := &record{
		uuid:    m.UUID,
		payload: bytes.Clone(m.Payload),
		key:     m.Metadata[millrace.MetadataPartitionKey],
	}
	if len(m.Metadata) > 0 {
		r.metadata = maps.Clone(m.Metadata)
	}
	return r, nil
}

// Subscriber returns a subscriber whose subscriptions consume as members of
// consumer group group. Every group receives every message published to a
// topic; within a group each message goes to one of the group's
// subscriptions, across all Subscriber values of that group. Group "" makes
// every Subscribe call a group of its own.
//
// After Close the returned subscriber is closed already.
func (b *Broker) Subscriber(group string) *Subscriber {
	s, err := b.subscriber(group)
	if err != nil {
		s = newSubscriber(b, group)
		s.markClosed()
	}
	return s
}

// subscriber returns a new subscriber of group that Close will close, or
// errClosed after Close.
func (b *Broker) subscriber(group string) (*Subscriber, error) {
	return b.subs.Add(func() (*Subscriber, error) { return newSubscriber(b, group), nil })
}

// Close closes every subscriber the broker made (see Subscriber.Close),
// stops all redelivery timers and drops every stored message. When Close
// returns, no goroutine of the broker is left. Publish and Subscribe fail
// with an error wrapping [transports.ErrClosed] afterwards. Close is safe to
// call more than once.
//
// The Broker is also the transport's message.Publisher, so closing the
// publisher closes the whole broker.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	topics := b.topics
	b.topics = nil
	b.mu.Unlock()

	_, _ = b.subs.CloseAll() // Subscriber.Close never fails
	for _, t := range topics {
		t.close()
	}
	b.logger.Debug("memory broker closed", nil)
	return nil
}

// topic returns the named topic, creating it on first use.
func (b *Broker) topic(name string) (*topic, error) {
	b.mu.RLock()
	t, closed := b.topics[name], b.closed
	b.mu.RUnlock()
	if t != nil {
		return t, nil
	}
	if closed {
		return nil, errClosed
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errClosed
	}
	if t = b.topics[name]; t == nil {
		t = newTopic(name, &b.cfg)
		b.topics[name] = t
	}
	return t, nil
}

// SubscribeEphemeral subscribes to topic for the caller alone
// ([transports.EphemeralSubscriber]): in a group of its own that gets what
// is published from now on, not the retained messages, and is gone when the
// subscription ends, at ctx's end or the broker's Close.
func (b *Broker) SubscribeEphemeral(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s, err := b.subscriber("")
	if err != nil {
		return nil, err
	}
	return b.ephemeral(ctx, s, topic, nil)
}

// ephemeral subscribes s fresh to topic and closes s when ctx ends (then
// calls done, if set).
func (b *Broker) ephemeral(ctx context.Context, s *Subscriber, topic string, done func()) (<-chan *message.Message, error) {
	ch, err := s.subscribe(ctx, topic, true)
	if err != nil {
		_ = s.Close()
		return nil, err
	}
	context.AfterFunc(ctx, func() {
		_ = s.Close()
		if done != nil {
			done()
		}
	})
	return ch, nil
}

// Backlog returns how many messages of topic group has not acked yet (its
// pending and in-flight messages, and those waiting for a redelivery; not
// those given to Delay before they are due), or with group "" how many
// messages topic retains ([transports.Backlogger]). A group that never
// subscribed has none.
func (b *Broker) Backlog(_ context.Context, topic, group string) (int64, error) {
	t, err := b.topic(topic)
	if err != nil {
		return 0, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if group == "" {
		return int64(len(t.hist.recs)), nil
	}
	if g := t.named[group]; g != nil {
		return int64(g.pending), nil
	}
	return 0, nil
}

// forget removes a closed subscriber from the subscribers Close closes.
func (b *Broker) forget(s *Subscriber) { b.subs.Remove(s) }
