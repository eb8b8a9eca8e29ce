package amqp_test

import (
	"context"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/millrace/millrace/transports/transporttest"
)

// publishRaw publishes p to exchange with routing key key through a plain
// amqp091 connection, as a client other than Watermill would.
func publishRaw(t *testing.T, exchange, key string, p amqp091.Publishing) {
	t.Helper()
	conn, err := amqp091.Dial(brokerURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.PublishWithContext(context.Background(), exchange, key, false, false, p); err != nil {
		t.Fatal(err)
	}
}

// A message without Watermill's UUID header gets an id: "amqp:" and its
// message-id property when it has one (stable across redeliveries, so
// deduplication works), else a random UUID.
func TestSubscriber_ForeignMessageGetsID(t *testing.T) {
	tests := []struct {
		name    string
		pub     amqp091.Publishing
		wantID  string // "" means any non-empty id
		wantKey string // a metadata key that must arrive
	}{
		{"message-id", amqp091.Publishing{MessageId: "order-17", Headers: amqp091.Table{"k": "v"}, Body: []byte("a")}, "amqp:order-17", "k"},
		{"no message-id", amqp091.Publishing{Headers: amqp091.Table{"k": "v"}, Body: []byte("b")}, "", "k"},
		{"no headers at all", amqp091.Publishing{Body: []byte("c")}, "", ""},
	}
	tr := openTransport(t, nil)
	topic := uniqueTopic("foreign")
	subs := subscribeGroups(t, tr, topic, nil, "g")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			publishRaw(t, topic, "", tt.pub)
			got := transporttest.Receive(t, subs["g"], 10*time.Second)
			if string(got.Payload) != string(tt.pub.Body) {
				t.Fatalf("got payload %q, want %q", got.Payload, tt.pub.Body)
			}
			switch {
			case tt.wantID != "" && got.UUID != tt.wantID:
				t.Errorf("id %q, want %q", got.UUID, tt.wantID)
			case got.UUID == "":
				t.Error("empty id")
			}
			if tt.wantKey != "" && got.Metadata.Get(tt.wantKey) != "v" {
				t.Errorf("metadata %v, want %s=v", got.Metadata, tt.wantKey)
			}
		})
	}
}
