package amqp_test

import (
	"testing"
	"time"

	"github.com/millrace/millrace/transports/amqp"
	"github.com/millrace/millrace/transports/transporttest"
)

// With exchange_type topic, a group subscribed to a wildcard topic receives
// every topic it matches, and nothing else.
func TestTopicExchange_WildcardSubscription(t *testing.T) {
	exchange := uniqueTopic("exchange")
	tr := openTransport(t, func(c *amqp.Config) {
		c.ExchangeType = amqp.ExchangeTopic
		c.Exchange = exchange
	})
	prefix := uniqueTopic("wild")
	subs := subscribeGroups(t, tr, prefix+".orders.*", nil, "g")
	deleteLater(t, func() []string { return nil }, func() []string { return []string{exchange} })

	pub := tr.Publisher()
	for _, topic := range []string{prefix + ".payments.made", prefix + ".orders.placed"} {
		if err := pub.Publish(topic, newMessage(topic)); err != nil {
			t.Fatal(err)
		}
	}
	if got := transporttest.Receive(t, subs["g"], 10*time.Second); string(got.Payload) != prefix+".orders.placed" {
		t.Errorf("got %q, want only the orders message", got.Payload)
	}
}
