package kafka

import (
	"context"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/transports"
)

var _ transports.EphemeralSubscriber = (*Transport)(nil)

// SubscribeEphemeral subscribes to topic for this process alone (see
// [transports.EphemeralSubscriber]): a consumer in no consumer group reads
// every partition of topic from its newest offset at the moment
// SubscribeEphemeral returns, so every message published after it returned
// is delivered and none published before. It commits nothing and joins no
// group, so the broker keeps nothing for it; it is the subscription of
// Subscriber("") with the newest offset instead of initial_offset.
//
// Each partition hands out one message at a time. Ack moves on to the
// partition's next message; Nack delivers the message again on this
// subscription after [NackResendSleep], and the partition's later messages
// wait for it. The partitions are those topic has when the subscription
// opens; a topic that does not exist is created by the broker's topic
// auto-creation. Should the consumer of a partition fail for good (its
// offset was deleted by retention while it lagged), the subscription starts
// that topic again from the newest offset.
//
// The subscription ends, and its channel is closed, when ctx ends or the
// transport closes. After Close it fails with an error wrapping
// [transports.ErrClosed].
func (t *Transport) SubscribeEphemeral(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// One subscriber per subscription, so that the subscription ends by
	// closing it, kept in subs so that Close closes it too.
	s, err := t.subs.Add(func() (*subscriber, error) {
		inner, err := t.newSubscriber("", t.ephemeral)
		if err != nil {
			return nil, err
		}
		return &subscriber{inner: inner}, nil
	})
	if err != nil {
		return nil, err
	}
	ch, err := s.Subscribe(ctx, topic)
	if err != nil {
		t.subs.Remove(s)
		_ = s.Close()
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() {
		t.subs.Remove(s)
		_ = s.Close()
	})
	s.mu.Lock()
	s.release = stop
	s.mu.Unlock()
	return ch, nil
}
