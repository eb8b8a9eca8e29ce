package memory

import (
	"context"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Subscriber consumes as a member of one consumer group. Each Subscribe call
// is one more consumer of the group, sharing the group's messages with the
// group's other subscriptions, from this Subscriber value or another one of
// the same group. Group "" is the exception: each Subscribe call is a group of
// its own and receives every message.
type Subscriber struct {
	b     *Broker
	group string

	mu      sync.Mutex
	closed  bool
	closing chan struct{}  // closed by Close
	running sync.WaitGroup // one per subscription goroutine
}

var (
	_ message.Subscriber           = (*Subscriber)(nil)
	_ message.SubscribeInitializer = (*Subscriber)(nil)
)

func newSubscriber(b *Broker, group string) *Subscriber {
	return &Subscriber{b: b, group: group, closing: make(chan struct{})}
}

// Subscribe starts a subscription to topic and returns its channel.
//
// The subscription delivers one message at a time: it sends the next one
// only after the previous one was acked or nacked. A nacked message is
// delivered again (to any subscription of the group) after the configured
// delay, meanwhile other messages flow. Messages with the same partition key
// (metadata millrace.MetadataPartitionKey) are delivered in publish order,
// one at a time within the group. A new group starts with the topic's
// retained messages.
//
// When ctx is done the subscription stops and closes the channel; a message
// that was offered but not yet received goes back to the group at once. A
// message already received can still be acked or nacked until the
// Subscriber is closed. Each delivered message has a context that carries
// ctx's values and is cancelled when the message is acked or nacked or the
// Subscriber is closed, but not when ctx is cancelled, so a handler can
// finish during a graceful shutdown.
//
// After Close, Subscribe fails with an error wrapping
// [transports.ErrClosed].
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	return s.subscribe(ctx, topic, false)
}

// subscribe starts a subscription; fresh (group "" only) starts it without
// the topic's retained messages.
func (s *Subscriber) subscribe(ctx context.Context, topic string, fresh bool) (<-chan *message.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	t, err := s.b.topic(topic)
	if err != nil {
		return nil, err
	}
	g, err := t.join(s.group, fresh)
	if err != nil {
		return nil, err
	}
	sub := &subscription{
		owner:    s,
		t:        t,
		g:        g,
		ctx:      ctx,
		msgCtx:   context.WithoutCancel(ctx),
		out:      make(chan *message.Message),
		assigned: make(chan *entry, 1),
	}
	s.b.logger.Debug("memory: subscribed", sub.logFields())
	s.running.Add(1)
	go sub.run()
	return sub.out, nil
}

// SubscribeInitialize creates the subscriber's group on topic if it does
// not exist yet (seeded with the topic's retained messages, as a new group
// is), so that the group keeps every message published from now on before
// it has a subscription: message.SubscribeInitializer, which the App's
// Prepare calls. For group "" it does nothing: such groups exist only while
// subscribed.
func (s *Subscriber) SubscribeInitialize(topic string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	if s.group == "" {
		return nil
	}
	t, err := s.b.topic(topic)
	if err != nil {
		return err
	}
	return t.ensure(s.group)
}

// Close ends every subscription of the Subscriber and closes their
// channels. Messages they had received but not yet acked or nacked go back
// to their groups, available for redelivery at once; acking them afterwards
// has no effect. Close returns when all subscription goroutines have ended.
// It is safe to call more than once.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	first := !s.closed
	if first {
		s.markClosed()
	}
	s.mu.Unlock()
	s.running.Wait()
	if first {
		s.b.forget(s)
	}
	return nil
}

func (s *Subscriber) markClosed() {
	s.closed = true
	close(s.closing)
}
