package amqp

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"
)

// waitQueueIdle is how long a wait queue outlives its last message's delay
// when nothing is delayed through it any more: the broker then deletes it
// (x-expires), so distinct delays do not pile up queues.
const waitQueueIdle = time.Hour

// delayer publishes delayed messages over a channel of the transport's side
// connection, opened on first use and again after it was lost.
type delayer struct {
	t *Transport

	mu       sync.Mutex
	closed   bool
	ch       *amqp091.Channel
	declared map[string]struct{} // queues declared on ch
}

// Delay puts a copy of msg (UUID, payload, metadata) into consumer group
// group's queue of topic ("<topic>.<group>") once delay has passed, and into
// no other group's queue. It implements millrace's middleware.Delayer.
//
// The copy waits in the queue "<topic>.<group>.wait.<delay in ms>" with a
// per-message expiration of delay; RabbitMQ dead-letters it through the
// default exchange into the group's queue when it expires. A wait queue
// holds one delay value, so its head always expires first and no message
// waits behind a longer one. Wait queues unused for delay+1h are deleted by
// the broker. Delays are rounded up to whole milliseconds; delay <= 0
// enqueues at once.
//
// Delay returns after the broker confirmed the copy (publisher confirms, on
// regardless of publisher_confirms): only then may the caller ack msg.
func (t *Transport) Delay(ctx context.Context, topic, group string, msg *message.Message, delay time.Duration) error {
	if group == "" {
		return errors.New("amqp: delay: consumer group must not be empty")
	}
	return t.delay.publish(ctx, queueName(topic, group), msg, delay)
}

func (d *delayer) publish(ctx context.Context, target string, msg *message.Message, delay time.Duration) error {
	// The marshaler leaves out the redelivered flag: the copy is a new
	// delivery, not a redelivery of msg.
	p, err := d.t.marshaler().Marshal(msg)
	if err != nil {
		return fmt.Errorf("amqp: delay %s: %w", msg.UUID, err)
	}

	// The copy never expires (MetadataExpiration): the wait queue's
	// expiry replaces the message's, and RabbitMQ drops the expiration
	// when it dead-letters the copy into target.
	p.Expiration = ""
	routingKey := target
	var ms int64
	if delay > 0 {
		ms = int64((delay + time.Millisecond - 1) / time.Millisecond)
		routingKey = target + ".wait." + strconv.FormatInt(ms, 10)
		p.Expiration = strconv.FormatInt(ms, 10)
	}

	d.mu.Lock()
	ch, err := d.channel()
	if err == nil {
		err = declareError(target, d.declare(ch, target, d.t.queueArguments(target)))
		if v, ok := existingVersion(err); ok {
			d.t.adoptVersion(target, v)
			if ch, err = d.channel(); err == nil { // the refused declaration closed ch
				err = declareError(target, d.declare(ch, target, d.t.queueArguments(target)))
			}
		}
	}
	if err == nil && ms > 0 {
		err = d.declare(ch, routingKey, amqp091.Table{
			"x-dead-letter-exchange":    "",
			"x-dead-letter-routing-key": target,
			"x-expires":                 ms + waitQueueIdle.Milliseconds(),
		})
	}
	var dc *amqp091.DeferredConfirmation
	if err == nil {
		dc, err = ch.PublishWithDeferredConfirmWithContext(ctx, "", routingKey, false, false, p)
	}
	d.mu.Unlock()
	if err != nil {
		return fmt.Errorf("amqp: delay %s to %s: %w", msg.UUID, target, err)
	}

	ok, err := dc.WaitContext(ctx)
	switch {
	case err != nil:
		return fmt.Errorf("amqp: delay %s to %s: waiting for confirm: %w", msg.UUID, target, err)
	case !ok:
		return fmt.Errorf("amqp: delay %s to %s: broker refused the message (nack)", msg.UUID, target)
	}
	return nil
}

// channel returns the open delay channel, (re)connecting as needed. d.mu is
// held.
func (d *delayer) channel() (*amqp091.Channel, error) {
	if d.closed {
		return nil, errClosed
	}
	if d.ch != nil && !d.ch.IsClosed() {
		return d.ch, nil
	}
	conn, err := d.t.sideConn.get()
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, err
	}
	d.ch = ch
	d.declared = make(map[string]struct{})
	return ch, nil
}

// declare declares queue name once per channel with the transport's
// durability and args. d.mu is held.
func (d *delayer) declare(ch *amqp091.Channel, name string, args amqp091.Table) error {
	if _, ok := d.declared[name]; ok {
		return nil
	}
	if _, err := ch.QueueDeclare(name, d.t.cfg.Durable, false, false, false, args); err != nil {
		return fmt.Errorf("declare queue %s: %w", name, err)
	}
	d.declared[name] = struct{}{}
	return nil
}

func (d *delayer) close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	if d.ch == nil || d.ch.IsClosed() {
		return nil
	}
	return d.ch.Close()
}
