package memory_test

import (
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/millrace/millrace/transports/memory"
)

// client is one service's connection to a shared broker, as the universal
// tests model it: closing its publisher ends the client, not the broker.
type client struct{ *memory.Broker }

func (client) Close() error { return nil }

// universalBroker returns a broker shared by all universal tests of one run
// (they use distinct topics), closed when the run ends. Redelivery is fast so
// the nack-heavy tests finish quickly.
func universalBroker(t *testing.T) *memory.Broker {
	t.Helper()
	cfg := memory.DefaultConfig()
	cfg.RedeliveryDelay = 5 * time.Millisecond
	cfg.MaxRedeliveryDelay = 100 * time.Millisecond
	b, err := memory.New(*cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func consumerGroupConstructor(b *memory.Broker) tests.ConsumerGroupPubSubConstructor {
	return func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		return client{b}, b.Subscriber(group)
	}
}

// TestUniversal_SharedGroup runs Watermill's universal tests with every
// constructed subscriber in one consumer group, as a scaled-out service
// consumes: subscribers compete for messages and a new subscriber takes over
// what the group has not acked.
func TestUniversal_SharedGroup(t *testing.T) {
	b := universalBroker(t)
	tests.TestPubSub(t,
		tests.Features{
			ConsumerGroups:                      true,
			ExactlyOnceDelivery:                 false,
			GuaranteedOrder:                     true,
			GuaranteedOrderWithSingleSubscriber: true,
			Persistent:                          true,
			RequireSingleInstance:               false,
			NewSubscriberReceivesOldMessages:    false,
		},
		func(t *testing.T) (message.Publisher, message.Subscriber) {
			return client{b}, b.Subscriber("universal")
		},
		consumerGroupConstructor(b),
	)
}

// TestUniversal_FanOut runs Watermill's universal tests with group "": every
// Subscribe call is a new group that starts with the topic's retained
// messages, which is what NewSubscriberReceivesOldMessages asks.
//
// RequireSingleInstance is set because with fan-out the tests' multiplied
// subscriber would only receive every message once per subscription and
// leave its forwarding goroutines blocked.
func TestUniversal_FanOut(t *testing.T) {
	b := universalBroker(t)
	tests.TestPubSub(t,
		tests.Features{
			ConsumerGroups:                   true,
			ExactlyOnceDelivery:              false,
			GuaranteedOrder:                  true,
			Persistent:                       true,
			RequireSingleInstance:            true,
			NewSubscriberReceivesOldMessages: true,
		},
		func(t *testing.T) (message.Publisher, message.Subscriber) {
			return client{b}, b.Subscriber("")
		},
		consumerGroupConstructor(b),
	)
}
