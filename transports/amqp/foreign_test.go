package amqp_test

import (
	"context"
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/transports/amqp"
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

// The AMQP properties of another client's message are readable as the
// metadata keys millrace uses for them, and a header of the same key wins.
func TestSubscriber_PropertiesBecomeMetadata(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 30, 15, 0, time.UTC)
	tests := []struct {
		name string
		pub  amqp091.Publishing
		want map[string]string
	}{
		{
			name: "every property",
			pub: amqp091.Publishing{
				ContentType: "application/json", CorrelationId: "flow-7", Type: "OrderPlaced",
				AppId: "legacy-shop", ReplyTo: "shop.replies", Timestamp: at, Expiration: "60000",
				MessageId: "m-1", Body: []byte(`{}`),
			},
			want: map[string]string{
				millrace.MetadataContentType: "application/json", millrace.MetadataCorrelationID: "flow-7",
				millrace.MetadataType: "OrderPlaced", millrace.MetadataPublishedBy: "legacy-shop",
				millrace.MetadataReplyTo: "shop.replies", millrace.MetadataPublishedAt: "2026-12-01T10:30:15Z",
				amqp.MetadataExpiration: "1m0s",
			},
		},
		{
			name: "headers win",
			pub: amqp091.Publishing{
				ContentType: "text/plain", CorrelationId: "from-property", Timestamp: at,
				Headers: amqp091.Table{
					millrace.MetadataCorrelationID: "from-header",
					millrace.MetadataPublishedAt:   "2026-12-01T10:30:15.123456789Z",
				},
				Body: []byte("x"),
			},
			want: map[string]string{
				millrace.MetadataContentType: "text/plain", millrace.MetadataCorrelationID: "from-header",
				millrace.MetadataPublishedAt: "2026-12-01T10:30:15.123456789Z",
			},
		},
		{
			name: "none",
			pub:  amqp091.Publishing{Body: []byte("y")},
			want: map[string]string{},
		},
	}
	tr := openTransport(t, nil)
	topic := uniqueTopic("properties")
	subs := subscribeGroups(t, tr, topic, nil, "g")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			publishRaw(t, topic, "", tt.pub)
			got := transporttest.Receive(t, subs["g"], 10*time.Second)
			for k, v := range tt.want {
				if got.Metadata[k] != v {
					t.Errorf("metadata %s = %q, want %q", k, got.Metadata[k], v)
				}
			}
			if len(got.Metadata) != len(tt.want) {
				t.Errorf("metadata %v, want exactly %v", got.Metadata, tt.want)
			}
		})
	}
}

// A message millrace publishes carries the matching AMQP properties, which
// a consumer in another language reads; a bad expiration fails Publish
// naming the key; a message set aside in the poison queue never expires.
func TestPublisher_SetsProperties(t *testing.T) {
	tr := openTransport(t, nil)
	topic := uniqueTopic("properties")
	queue := topic + ".raw"
	deleteLater(t, func() []string { return []string{queue} }, func() []string { return []string{topic} })
	ch := rawQueue(t, topic, queue)

	msg := newMessage(`{"order":1}`)
	for k, v := range map[string]string{
		millrace.MetadataContentType: "application/json", millrace.MetadataCorrelationID: "flow-9",
		millrace.MetadataType: "OrderPlaced", millrace.MetadataPublishedBy: "shop",
		millrace.MetadataReplyTo: "shop.replies", millrace.MetadataPublishedAt: "2026-12-01T10:30:15.5Z",
		amqp.MetadataExpiration: "90s",
	} {
		msg.Metadata.Set(k, v)
	}
	poisoned := newMessage("bad")
	poisoned.Metadata.Set(amqp.MetadataExpiration, "90s")
	poisoned.Metadata.Set(millrace.MetadataPoisonReason, "boom")
	if err := tr.Publisher().Publish(topic, msg, poisoned); err != nil {
		t.Fatal(err)
	}

	d := getRaw(t, ch, queue)
	want := amqp091.Delivery{
		MessageId: msg.UUID, ContentType: "application/json", CorrelationId: "flow-9", Type: "OrderPlaced",
		AppId: "shop", ReplyTo: "shop.replies", Expiration: "90000",
		Timestamp: time.Date(2026, 12, 1, 10, 30, 15, 0, time.UTC),
	}
	if d.MessageId != want.MessageId || d.ContentType != want.ContentType || d.CorrelationId != want.CorrelationId ||
		d.Type != want.Type || d.AppId != want.AppId || d.ReplyTo != want.ReplyTo || d.Expiration != want.Expiration ||
		!d.Timestamp.Equal(want.Timestamp) {
		t.Errorf("properties: message-id %q content-type %q correlation-id %q type %q app-id %q reply-to %q expiration %q timestamp %v,\nwant %q %q %q %q %q %q %q %v",
			d.MessageId, d.ContentType, d.CorrelationId, d.Type, d.AppId, d.ReplyTo, d.Expiration, d.Timestamp,
			want.MessageId, want.ContentType, want.CorrelationId, want.Type, want.AppId, want.ReplyTo, want.Expiration, want.Timestamp)
	}
	if d := getRaw(t, ch, queue); d.MessageId != poisoned.UUID || d.Expiration != "" {
		t.Errorf("poison message %s: expiration %q, want none", d.MessageId, d.Expiration)
	}

	for _, bad := range []string{"soon", "0s", "-5s", "500us"} {
		m := newMessage("x")
		m.Metadata.Set(amqp.MetadataExpiration, bad)
		err := tr.Publisher().Publish(topic, m)
		if err == nil || !strings.Contains(err.Error(), amqp.MetadataExpiration) || !strings.Contains(err.Error(), bad) {
			t.Errorf("publish with %s %q: %v, want an error naming the key and the value", amqp.MetadataExpiration, bad, err)
		}
	}
}

// rawQueue declares queue, bound to topic's exchange (which it declares as
// the transport does), on a plain amqp091 channel, and returns the channel.
func rawQueue(t *testing.T, topic, queue string) *amqp091.Channel {
	t.Helper()
	conn, err := amqp091.Dial(brokerURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare(topic, "fanout", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(queue, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(queue, "", topic, false, nil); err != nil {
		t.Fatal(err)
	}
	return ch
}

// getRaw gets the next message of queue, waiting up to 10s for one.
func getRaw(t *testing.T, ch *amqp091.Channel, queue string) amqp091.Delivery {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatalf("get from %s: %v", queue, err)
		}
		if ok {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("no message in %s after 10s", queue)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
