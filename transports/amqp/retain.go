package amqp

import (
	"context"
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"
)

// RetainedQueue is the queue Retain keeps topic's messages in.
func RetainedQueue(topic string) string { return topic + ".retained" }

// Retain makes the broker keep every message published to topic from now on:
// it declares topic's exchange and the durable queue RetainedQueue(topic)
// bound to it, which nobody consumes. Browse reads it. Without this, a
// message published to a topic that no consumer group has subscribed to is
// dropped by RabbitMQ. It implements transports.Retainer. The queue gets
// none of the queue options (no TTL, no length limit): retained messages
// stay until someone removes them. Retain is idempotent.
func (t *Transport) Retain(ctx context.Context, topic string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ch, err := t.sideChannel()
	if err != nil {
		return fmt.Errorf("amqp: retain %s: %w", topic, err)
	}
	defer func() { _ = ch.Close() }()

	exchange, queue := t.exchangeName(topic), RetainedQueue(topic)
	if err := t.declareExchange(ch, exchange); err != nil {
		return fmt.Errorf("amqp: retain %s: %w", topic, err)
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		return fmt.Errorf("amqp: retain %s: %w", topic, declareError(queue, err))
	}
	if err := ch.QueueBind(queue, t.routingKey(topic), exchange, false, nil); err != nil {
		return fmt.Errorf("amqp: retain %s: bind queue %s to exchange %s: %w", topic, queue, exchange, err)
	}
	return nil
}

// ErrNotRetained is returned by Browse for a topic that Retain was never
// called for (its queue does not exist).
var ErrNotRetained = errors.New("topic is not retained: call Retain first")

// Browse returns the messages retained for topic (see Retain), oldest
// first, without removing them. It implements millrace's dlq.Browser.
//
// It takes every message of the queue with basic.get on a channel of its
// own, without acking, and then gives them all back (a requeueing nack of
// the lot); RabbitMQ puts requeued messages back in their places, so the
// queue's order and count are as before. Browse calls on one Transport run
// one at a time, since a message taken by one would be missing from the
// other's result; two processes browsing one topic at the same moment may
// each see part of it. Messages published during a Browse may or may not
// be in its result. If the connection is lost midway, the broker requeues
// whatever was taken.
func (t *Transport) Browse(ctx context.Context, topic string) ([]*message.Message, error) {
	t.browse.Lock()
	defer t.browse.Unlock()

	ch, err := t.sideChannel()
	if err != nil {
		return nil, fmt.Errorf("amqp: browse %s: %w", topic, err)
	}
	// Closing the channel also requeues anything still unacked.
	defer func() { _ = ch.Close() }()

	queue := RetainedQueue(topic)
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		var aerr *amqp091.Error
		if errors.As(err, &aerr) && aerr.Code == amqp091.NotFound {
			return nil, fmt.Errorf("amqp: browse %s: %w (queue %q does not exist)", topic, ErrNotRetained, queue)
		}
		return nil, fmt.Errorf("amqp: browse %s: %w", topic, err)
	}

	mar := t.marshaler()
	msgs := make([]*message.Message, 0, q.Messages)
	var last uint64
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		d, ok, err := ch.Get(queue, false)
		if err != nil {
			return nil, fmt.Errorf("amqp: browse %s: get from %s: %w", topic, queue, err)
		}
		if !ok {
			break
		}
		last = d.DeliveryTag
		m, err := mar.Unmarshal(d)
		if err != nil {
			return nil, fmt.Errorf("amqp: browse %s: %w", topic, err)
		}
		msgs = append(msgs, m)
	}
	if last > 0 {
		if err := ch.Nack(last, true, true); err != nil {
			return nil, fmt.Errorf("amqp: browse %s: give messages back: %w", topic, err)
		}
	}
	return msgs, nil
}

// sideChannel opens a new channel on the side connection.
func (t *Transport) sideChannel() (*amqp091.Channel, error) {
	conn, err := t.sideConn.get()
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open channel: %w", err)
	}
	return ch, nil
}
