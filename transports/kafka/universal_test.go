package kafka_test

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
)

// universalConstructor opens a transport on brokers per call (closed when the
// test ends) and returns its publisher and a subscriber of group(t).
func universalConstructor(brokers []string, group func(t *testing.T) string) tests.PubSubConstructor {
	return func(t *testing.T) (message.Publisher, message.Subscriber) {
		return consumerGroupConstructor(brokers)(t, group(t))
	}
}

func consumerGroupConstructor(brokers []string) tests.ConsumerGroupPubSubConstructor {
	return func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		tr := openTransport(t, testConfig(brokers))
		sub, err := tr.Subscriber(group)
		if err != nil {
			t.Fatal(err)
		}
		return tr.Publisher(), sub
	}
}

// groupPerTest names one consumer group per universal test: the subscribers
// one test makes share it (and take over each other's unacked messages),
// while the tests, which run in parallel, never rebalance each other.
func groupPerTest(t *testing.T) string {
	sum := sha256.Sum256([]byte(t.Name()))
	return "universal-" + hex.EncodeToString(sum[:8])
}

// TestUniversal_SharedGroup runs Watermill's universal tests with every
// subscriber of a test in one consumer group, as a scaled-out service
// consumes, on topics of 4 partitions.
//
// GuaranteedOrder is false: the tests publish without partition key, so
// their messages are spread over partitions and only each partition is
// ordered (per-key order is TestPartitionKey_KeepsOrderPerKey).
// NewSubscriberReceivesOldMessages is false: a new member of a group
// continues where the group is, it does not start over (TestUniversal_NoGroup
// covers that). ForceShort: every subscriber joins a Kafka consumer group
// (a rebalance of up to a second each), which makes the long variants take
// minutes.
func TestUniversal_SharedGroup(t *testing.T) {
	brokers := newCluster(t, 4)
	tests.TestPubSub(t,
		tests.Features{
			ConsumerGroups:                      true,
			ExactlyOnceDelivery:                 false,
			GuaranteedOrder:                     false,
			GuaranteedOrderWithSingleSubscriber: false,
			Persistent:                          true,
			NewSubscriberReceivesOldMessages:    false,
			ForceShort:                          true,
		},
		universalConstructor(brokers, groupPerTest),
		consumerGroupConstructor(brokers),
	)
}

// TestUniversal_NoGroup runs Watermill's universal tests with group "": every
// subscription reads the whole topic from the oldest retained message, which
// is what NewSubscriberReceivesOldMessages asks. The topics have one
// partition, so they are totally ordered (GuaranteedOrder).
// RequireSingleInstance: the tests' multiplied subscriber would receive every
// message once per subscription.
func TestUniversal_NoGroup(t *testing.T) {
	brokers := newCluster(t, 1)
	tests.TestPubSub(t,
		tests.Features{
			ConsumerGroups:                   true,
			ExactlyOnceDelivery:              false,
			GuaranteedOrder:                  true,
			Persistent:                       true,
			RequireSingleInstance:            true,
			NewSubscriberReceivesOldMessages: true,
			ForceShort:                       true,
		},
		universalConstructor(brokers, func(*testing.T) string { return "" }),
		consumerGroupConstructor(brokers),
	)
}
