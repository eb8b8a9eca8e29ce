package amqp_test

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/millrace/millrace/transports/transporttest"
)

// A message from another client with non-string headers is delivered with
// them as text, not refused (watermill-amqp's own marshaler would nack and
// requeue it forever).
func TestSubscriber_AcceptsNonStringHeaders(t *testing.T) {
	tr := openTransport(t, nil)
	topic := uniqueTopic("headers")
	subs := subscribeGroups(t, tr, topic, nil, "g")

	conn, err := amqp091.Dial(brokerURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	id := watermill.NewUUID()
	err = ch.PublishWithContext(context.Background(), topic, "", false, false, amqp091.Publishing{
		Headers: amqp091.Table{"_watermill_message_uuid": id, "attempt": int32(3), "origin": "legacy"},
		Body:    []byte("from elsewhere"),
	})
	if err != nil {
		t.Fatal(err)
	}
	got := transporttest.Receive(t, subs["g"], 10*time.Second)
	if got.UUID != id || got.Metadata.Get("attempt") != "3" || got.Metadata.Get("origin") != "legacy" {
		t.Errorf("got uuid %s metadata %v, want %s with attempt=3 origin=legacy", got.UUID, got.Metadata, id)
	}
}
