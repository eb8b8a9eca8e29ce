package amqp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"
)

// subscriber consumes the queues of one consumer group. It is written anew
// rather than taken from watermill-amqp, whose reconnection reassigns a
// shared field without synchronisation (a data race that -race reports on
// every broker restart, ThreeDotsLabs/watermill#693). Its subscriptions
// share the transport's subscriber connection, dialled again by the first
// of them to notice it was lost.
type subscriber struct {
	t     *Transport
	group string

	// ephemeral is set for the subscriber of one SubscribeEphemeral
	// subscription: its queue is server-named and exclusive (see
	// ephemeral.go).
	ephemeral bool

	mu      sync.Mutex // guards closed
	closed  bool
	closing chan struct{}
	wg      sync.WaitGroup
}

func newSubscriber(t *Transport, group string) *subscriber {
	return &subscriber{t: t, group: group, closing: make(chan struct{})}
}

// Subscribe declares the group's queue on topic, binds it to the topic's
// exchange and consumes it until ctx is done or the subscriber closed; then
// the returned channel is closed. Each message waits for Ack or Nack before
// the next is sent: Ack acks it on the broker (the acks of messages handled
// back to back are sent together, see ackBatch), Nack requeues it at once,
// as does closing first. When the connection is lost the subscription waits
// (reconnect_initial_interval, growing to reconnect_max_interval), dials
// again, and resumes; unacked messages are redelivered.
func (s *subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	if err := s.declare(topic); err != nil {
		return nil, err
	}
	out := make(chan *message.Message)
	s.wg.Add(1)
	go s.run(ctx, topic, queueName(topic, s.group), out)
	return out, nil
}

// SubscribeInitialize declares the group's queue on topic and binds it,
// without consuming: the group keeps topic's messages from now on.
func (s *subscriber) SubscribeInitialize(topic string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	return s.declare(topic)
}

// Close ends the subscriptions (their unacked messages are requeued) and
// waits for them. It is safe to call more than once.
func (s *subscriber) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.closing)
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// declare declares topic's exchange and the group's queue, and binds them,
// on a channel of its own (a refused declaration closes its channel).
func (s *subscriber) declare(topic string) error {
	queue := queueName(topic, s.group)
	conn, err := s.t.subConn.get()
	if err != nil {
		return fmt.Errorf("amqp: subscribe %s: %w", queue, err)
	}
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("amqp: subscribe %s: open channel: %w", queue, err)
	}
	defer func() { _ = ch.Close() }()
	err = s.t.declareQueue(ch, topic, queue)
	if v, ok := existingVersion(err); ok {
		s.t.adoptVersion(queue, v)
		// The refused declaration closed ch.
		retry, err := conn.Channel()
		if err != nil {
			return fmt.Errorf("amqp: subscribe %s: open channel: %w", queue, err)
		}
		defer func() { _ = retry.Close() }()
		return s.t.declareQueue(retry, topic, queue)
	}
	return err
}

// run consumes queue, on topic, until ctx is done or the subscriber
// closes, reconnecting after failures. An ephemeral subscriber's queue,
// declared by SubscribeEphemeral, goes with the connection: after a failure
// it consumes a new one (see consume).
func (s *subscriber) run(ctx context.Context, topic, queue string, out chan<- *message.Message) {
	defer s.wg.Done()
	defer close(out)
	wait := s.t.cfg.ReconnectInitialInterval
	for {
		started, err := s.consume(ctx, topic, queue, out)
		if ctx.Err() != nil || s.isClosing() {
			return
		}
		if started {
			wait = s.t.cfg.ReconnectInitialInterval
		}
		s.t.logger.Error("AMQP consumer stopped, resuming after wait", err, watermill.LogFields{"amqp_queue": queue, "wait": wait.String()})
		if s.ephemeral {
			queue = ""
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-s.closing:
			timer.Stop()
			return
		case <-timer.C:
		}
		wait = min(wait*2, s.t.cfg.ReconnectMaxInterval)
	}
}

func (s *subscriber) isClosing() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}

// errChannelClosed ends consume when the broker closed the channel or the
// connection.
var errChannelClosed = errors.New("channel or connection closed")

// consume consumes queue on a new channel until it fails, ctx is done or
// the subscriber closes. started reports whether consuming began.
func (s *subscriber) consume(ctx context.Context, topic, queue string, out chan<- *message.Message) (started bool, err error) {
	conn, err := s.t.subConn.get()
	if err != nil {
		return false, err
	}
	ch, err := conn.Channel()
	if err != nil {
		return false, fmt.Errorf("open channel: %w", err)
	}
	// Closing the channel requeues every unacked message.
	defer func() { _ = ch.Close() }()
	if err := ch.Qos(s.t.cfg.Prefetch, 0, false); err != nil {
		return false, fmt.Errorf("set prefetch: %w", err)
	}
	switch {
	case s.ephemeral && queue == "":
		// The queue went with the connection it was declared on.
		if queue, err = s.t.declareEphemeral(ch, topic); err != nil {
			return false, err
		}
	case !s.ephemeral:
		// Declare again: after a broker restart a non-durable queue is
		// gone.
		if err := s.t.declareQueue(ch, topic, queue); err != nil {
			return false, err
		}
	}
	deliveries, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		return false, fmt.Errorf("consume %s: %w", queue, err)
	}
	acks := newAckBatch(ch, max(1, s.t.cfg.Prefetch/4))
	// Runs before the channel closes: the messages whose acks are held
	// were handled, and must not be requeued by the close.
	defer acks.flush()
	mar := s.t.marshaler()
	for {
		d, ok, err := s.next(ctx, deliveries, acks)
		if err != nil {
			return true, err
		}
		if !ok {
			return true, errChannelClosed
		}
		if err := s.deliver(ctx, mar, d, acks, out); err != nil {
			return true, err
		}
	}
}

// next returns the next delivery, sending the held acks meanwhile when they
// are due; ok is false when the channel closed.
func (s *subscriber) next(ctx context.Context, deliveries <-chan amqp091.Delivery, acks *ackBatch) (d amqp091.Delivery, ok bool, err error) {
	for {
		select {
		case d, ok = <-deliveries:
			return d, ok, nil
		case <-acks.due():
			acks.flush()
		case <-ctx.Done():
			return d, false, ctx.Err()
		case <-s.closing:
			return d, false, errClosed
		}
	}
}

// deliver hands d to out and settles it on the broker as the receiver
// settles the message: an ack through acks, a nack at once. It returns an
// error when ctx is done or the subscriber closes first (d is then requeued
// by closing the channel).
func (s *subscriber) deliver(ctx context.Context, mar marshaler, d amqp091.Delivery, acks *ackBatch, out chan<- *message.Message) error {
	msg, err := mar.Unmarshal(d)
	if err != nil {
		// Not with this marshaler. Never drop: requeue, and consume again
		// after the reconnect wait rather than in a tight loop.
		acks.flush()
		_ = d.Nack(false, true)
		return fmt.Errorf("unmarshal delivery %d: %w", d.DeliveryTag, err)
	}
	if d.Redelivered {
		msg.Metadata.Set(wamqp.MetadataRedeliveredKey, "true")
	}
	msgCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	msg.SetContext(msgCtx)

	// While the message waits for its receiver and its handler, earlier
	// acks still go out when due.
	for sent := false; !sent; {
		select {
		case out <- msg:
			sent = true
		case <-acks.due():
			acks.flush()
		case <-ctx.Done():
			return ctx.Err()
		case <-s.closing:
			return errClosed
		}
	}
	for {
		select {
		case <-msg.Acked():
			acks.add(d.DeliveryTag)
			return nil
		case <-msg.Nacked():
			settleNacked(d, acks)
			return nil
		case <-acks.due():
			acks.flush()
		case <-ctx.Done():
			settleIfDone(msg, d, acks)
			return ctx.Err()
		case <-s.closing:
			settleIfDone(msg, d, acks)
			return errClosed
		}
	}
}

// settleIfDone settles d if its message was acked or nacked already. The
// subscription ends: a select that sees the end and the ack at once picks
// either, and the ack of a message handled just before a graceful shutdown
// closed the subscriber must reach the broker rather than be lost, and the
// message delivered again, when the channel closes.
func settleIfDone(msg *message.Message, d amqp091.Delivery, acks *ackBatch) {
	select {
	case <-msg.Acked():
		acks.add(d.DeliveryTag)
	case <-msg.Nacked():
		settleNacked(d, acks)
	default:
	}
}

// settleNacked requeues d at once, after the held acks of the messages
// before it.
func settleNacked(d amqp091.Delivery, acks *ackBatch) {
	acks.flush()
	_ = d.Nack(false, true)
}

// declareQueue declares topic's exchange and queue with the configured
// arguments and binds them, on ch.
func (t *Transport) declareQueue(ch *amqp091.Channel, topic, queue string) error {
	exchange := t.exchangeName(topic)
	if err := t.declareExchange(ch, exchange); err != nil {
		return fmt.Errorf("amqp: subscribe %s: %w", queue, err)
	}
	if _, err := ch.QueueDeclare(queue, t.cfg.Durable, false, false, false, t.queueArguments(queue)); err != nil {
		return declareError(queue, fmt.Errorf("amqp: subscribe %s: declare queue: %w", queue, err))
	}
	if err := ch.QueueBind(queue, t.routingKey(topic), exchange, false, nil); err != nil {
		return fmt.Errorf("amqp: subscribe %s: bind to exchange %s: %w", queue, exchange, err)
	}
	return nil
}

// ErrQueueArguments is wrapped by the errors of Subscribe,
// SubscribeInitialize and Delay when a queue they declare exists with other
// arguments than the config gives (RabbitMQ's PRECONDITION_FAILED), for
// example after queue.max_priority was changed. RabbitMQ cannot change a
// queue's arguments: delete the queue (its messages are lost) or configure
// it as before.
var ErrQueueArguments = errors.New("queue exists with other arguments than configured")

// declareError makes err, from declaring queue, say which queue and
// argument differ when the broker refused the declaration as inequivalent.
// Other errors, and nil, are returned as they are.
func declareError(queue string, err error) error {
	var aerr *amqp091.Error
	if err == nil || !errors.As(err, &aerr) || aerr.Code != amqp091.PreconditionFailed {
		return err
	}
	// RabbitMQ's reason reads "PRECONDITION_FAILED - inequivalent arg
	// 'x-max-priority' for queue 'q' in vhost '/': received ... but current
	// is ...".
	arg := "an argument"
	if _, rest, ok := strings.Cut(aerr.Reason, "inequivalent arg '"); ok {
		if name, _, ok := strings.Cut(rest, "'"); ok {
			arg = name
			if key, ok := queueArgumentKeys[name]; ok {
				arg += " (config key transport.amqp." + key + ")"
			}
		}
	}
	return fmt.Errorf("amqp: queue %q: %w: %s differs; delete the queue (losing its messages) or configure it as it was: %w",
		queue, ErrQueueArguments, arg, aerr)
}
