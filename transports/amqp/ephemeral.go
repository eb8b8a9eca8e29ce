package amqp

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/millrace/millrace/transports"
)

var _ transports.EphemeralSubscriber = (*Transport)(nil)

// SubscribeEphemeral subscribes to topic for this process alone (see
// [transports.EphemeralSubscriber]): it declares a server-named queue
// ("amq.gen-…"), exclusive to the transport's subscriber connection and
// deleted by the broker when its consumer ends, binds it to topic's
// exchange, and consumes it. The queue is bound when SubscribeEphemeral
// returns, so every message published after it returned is delivered, and
// none published before. Messages are acked and nacked as those of a
// consumer group's subscription (see [Transport.Subscriber]); prefetch
// applies.
//
// The queue goes with the connection: when the connection is lost the
// subscription declares a new queue once the broker is back, and what was
// published meanwhile, or was in the old queue, is not delivered. Request
// and reply can afford that, since a request that gets no reply times out.
//
// The subscription ends, and its channel is closed, when ctx ends or the
// transport closes; the broker deletes the queue then. After Close it fails
// with an error wrapping [transports.ErrClosed].
func (t *Transport) SubscribeEphemeral(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if topic == "" {
		return nil, fmt.Errorf("amqp: subscribe for this process: topic must not be empty")
	}
	// One subscriber per subscription, kept in subs so that Close closes
	// it, and closed when ctx ends.
	s, err := t.subs.Add(func() (*subscriber, error) {
		s := newSubscriber(t, "")
		s.ephemeral = true
		return s, nil
	})
	if err != nil {
		return nil, err
	}
	queue, err := s.declareEphemeral(topic)
	if err != nil {
		t.subs.Remove(s)
		_ = s.Close()
		return nil, err
	}
	out := make(chan *message.Message)
	s.mu.Lock()
	if s.closed { // the transport closed meanwhile
		s.mu.Unlock()
		return nil, errClosed
	}
	s.wg.Add(1)
	go s.run(ctx, topic, queue, out)
	s.mu.Unlock()
	context.AfterFunc(ctx, func() {
		t.subs.Remove(s)
		_ = s.Close()
	})
	return out, nil
}

// declareEphemeral declares the subscriber's server-named queue on topic
// and binds it, on a channel of its own, and returns its name.
func (s *subscriber) declareEphemeral(topic string) (string, error) {
	conn, err := s.t.subConn.get()
	if err != nil {
		return "", fmt.Errorf("amqp: subscribe to %s for this process: %w", topic, err)
	}
	ch, err := conn.Channel()
	if err != nil {
		return "", fmt.Errorf("amqp: subscribe to %s for this process: open channel: %w", topic, err)
	}
	defer func() { _ = ch.Close() }()
	return s.t.declareEphemeral(ch, topic)
}

// declareEphemeral declares topic's exchange and a server-named, exclusive,
// auto-deleted queue, binds them on ch, and returns the queue's name. The
// queue has no arguments: queue.* config is for the groups' queues, which
// outlive their consumers.
func (t *Transport) declareEphemeral(ch *amqp091.Channel, topic string) (string, error) {
	exchange := t.exchangeName(topic)
	if err := t.declareExchange(ch, exchange); err != nil {
		return "", fmt.Errorf("amqp: subscribe to %s for this process: %w", topic, err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		return "", fmt.Errorf("amqp: subscribe to %s for this process: declare queue: %w", topic, err)
	}
	if err := ch.QueueBind(q.Name, t.routingKey(topic), exchange, false, nil); err != nil {
		return "", fmt.Errorf("amqp: subscribe to %s for this process: bind %s to exchange %s: %w", topic, q.Name, exchange, err)
	}
	return q.Name, nil
}
