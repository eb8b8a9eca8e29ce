package amqp_test

import (
	"context"
	"os"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
)

// recordingSubscriber remembers the queues and exchanges its subscriptions
// declare, so the test can delete them.
type recordingSubscriber struct {
	message.Subscriber
	group             string
	queues, exchanges *names
}

func (s recordingSubscriber) record(topic string) {
	s.queues.add(topic + "." + s.group)
	s.exchanges.add(topic)
}

func (s recordingSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.record(topic)
	return s.Subscriber.Subscribe(ctx, topic)
}

func (s recordingSubscriber) SubscribeInitialize(topic string) error {
	s.record(topic)
	return s.Subscriber.(message.SubscribeInitializer).SubscribeInitialize(topic)
}

// recordingPublisher remembers the exchanges its publishes declare.
type recordingPublisher struct {
	message.Publisher
	exchanges *names
}

func (p recordingPublisher) Publish(topic string, msgs ...*message.Message) error {
	p.exchanges.add(topic)
	return p.Publisher.Publish(topic, msgs...)
}

// universalConstructor opens a new transport per call, as a separate
// service instance would, and returns its publisher and a subscriber of
// group. Everything it declares is deleted when the (sub)test ends.
func universalConstructor(t *testing.T, group string) (message.Publisher, message.Subscriber) {
	t.Helper()
	queues, exchanges := &names{}, &names{}
	deleteLater(t, queues.get, exchanges.get)
	tr := openTransport(t, nil)
	sub, err := tr.Subscriber(group)
	if err != nil {
		t.Fatal(err)
	}
	return recordingPublisher{tr.Publisher(), exchanges},
		recordingSubscriber{Subscriber: sub, group: group, queues: queues, exchanges: exchanges}
}

// TestUniversal runs Watermill's universal Pub/Sub tests. Every subscriber
// of the plain constructor is in one group, so they share the topic's
// queue; the consumer group tests get a group each. Order is promised only
// to a single subscription (several subscriptions of a group share the
// queue's messages in no particular order). A new group does not receive
// messages published before its queue existed.
//
// The suite runs in short mode (ForceShort: fewer messages, the slow
// many-message variants skipped): the full suite takes over a minute per
// run with -race. Set MILLRACE_AMQP_FULL_UNIVERSAL=1 to run all of it.
func TestUniversal(t *testing.T) {
	tests.TestPubSub(t,
		tests.Features{
			ConsumerGroups:                      true,
			ExactlyOnceDelivery:                 false,
			GuaranteedOrder:                     true,
			GuaranteedOrderWithSingleSubscriber: true,
			Persistent:                          true,
			RequireSingleInstance:               false,
			NewSubscriberReceivesOldMessages:    false,
			ForceShort:                          os.Getenv("MILLRACE_AMQP_FULL_UNIVERSAL") == "",
		},
		func(t *testing.T) (message.Publisher, message.Subscriber) {
			return universalConstructor(t, "universal")
		},
		universalConstructor,
	)
}
