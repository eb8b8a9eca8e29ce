package amqp_test

import (
	"testing"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/millrace/millrace/transports/amqp"
)

// When a topic's exchange is deleted behind the publisher's back, one
// Publish fails and the next declares it again.
func TestPublisher_RedeclaresDeletedExchange(t *testing.T) {
	tr := openTransport(t, func(c *amqp.Config) { c.PublisherChannels = 1 })
	topic := uniqueTopic("redeclare")
	deleteLater(t, func() []string { return nil }, func() []string { return []string{topic} })
	if err := tr.Publisher().Publish(topic, newMessage("1")); err != nil {
		t.Fatal(err)
	}
	conn, err := amqp091.Dial(brokerURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDelete(topic, false, false); err != nil {
		t.Fatal(err)
	}
	var errs int
	for range 3 {
		if tr.Publisher().Publish(topic, newMessage("again")) != nil {
			errs++
		}
	}
	if errs > 1 {
		t.Errorf("%d of 3 publishes after the exchange was deleted failed, want at most 1", errs)
	}
}
