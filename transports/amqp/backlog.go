package amqp

import (
	"context"
	"errors"
	"fmt"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/millrace/millrace/transports"
)

var (
	_ transports.Backlogger    = (*Transport)(nil)
	_ transports.HealthChecker = (*Transport)(nil)
)

// Backlog returns how many messages wait in consumer group group's queue
// on topic ("<topic>.<group>"), or, with group "", in topic's retained
// queue (RetainedQueue, where the poison topic keeps its messages): the
// queue's ready messages, as a passive queue.declare on a channel of its
// own reports them. Messages delivered to a subscription and not yet acked
// (up to prefetch per subscription) are not counted, nor a group's delayed
// copies still in their wait queues. A queue that does not exist holds
// none. It returns when ctx ends, even if the broker has not answered. It
// implements [transports.Backlogger].
func (t *Transport) Backlog(ctx context.Context, topic, group string) (int64, error) {
	if topic == "" {
		return 0, errors.New("amqp: backlog: topic must not be empty")
	}
	queue := RetainedQueue(topic)
	if group != "" {
		queue = queueName(topic, group)
	}
	var n int64
	err := withContext(ctx, func() error {
		ch, err := t.sideChannel()
		if err != nil {
			return err
		}
		defer func() { _ = ch.Close() }()
		q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
		var aerr *amqp091.Error
		if errors.As(err, &aerr) && aerr.Code == amqp091.NotFound {
			return nil
		}
		n = int64(q.Messages)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("amqp: backlog of queue %s: %w", queue, err)
	}
	return n, nil
}

// CheckHealth reports whether the transport's connections to the broker
// are open: the publisher's, dialled again if it was lost (so that health
// comes back with the broker, whether or not anything publishes), and the
// subscribers', once subscriptions opened it (they dial it again
// themselves, after reconnect_initial_interval or more). It returns when
// ctx ends, even if a dial still runs (each is bounded by 10s). It
// implements [transports.HealthChecker].
func (t *Transport) CheckHealth(ctx context.Context) error {
	return withContext(ctx, func() error {
		if _, err := t.pubConn.get(); err != nil {
			return err
		}
		if !t.subConn.lost() {
			return nil
		}
		return fmt.Errorf("amqp: connection of the subscribers to %s lost; subscriptions are reconnecting", t.cfg.redactedURL())
	})
}

// withContext runs f and returns its error, or ctx's error if ctx ends
// first; f then goes on to its end in the background.
func withContext(ctx context.Context, f func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
