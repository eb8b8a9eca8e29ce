package amqp_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/millrace/millrace/transports/transporttest"
)

// A message from another client with non-string headers is delivered with
// them as JSON text, not refused (watermill-amqp's own marshaler would nack
// and requeue it forever) and not in Go's print format ("map[a:1]"): every
// AMQP field type, nested too.
func TestSubscriber_NonStringHeadersArriveAsJSON(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 30, 0, 0, time.UTC)
	headers := []struct {
		key   string
		value any
		want  string
	}{
		{"string", "legacy", "legacy"},
		{"int8", int8(-3), "-3"},
		{"int16", int16(300), "300"},
		{"int32", int32(3), "3"},
		{"int64", int64(1) << 40, "1099511627776"},
		{"uint8", uint8(7), "7"},
		{"float32", float32(2.5), "2.5"},
		{"float64", 0.125, "0.125"},
		{"bool", true, "true"},
		{"decimal", amqp091.Decimal{Scale: 2, Value: 1250}, "12.50"},
		{"small decimal", amqp091.Decimal{Scale: 3, Value: -5}, "-0.005"},
		{"timestamp", at, `"2026-12-01T10:30:00Z"`},
		{"bytes", []byte("hi"), `"aGk="`},
		{"table", amqp091.Table{"a": int32(1), "b": amqp091.Table{"c": "d"}}, `{"a":1,"b":{"c":"d"}}`},
		{"array", []any{int32(1), "x", amqp091.Decimal{Scale: 1, Value: 15}}, `[1,"x",1.5]`},
		{"void", nil, "null"},
	}
	table := amqp091.Table{}
	for _, h := range headers {
		table[h.key] = h.value
	}
	id := watermill.NewUUID()
	table["_watermill_message_uuid"] = id

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
	if err := ch.PublishWithContext(context.Background(), topic, "", false, false,
		amqp091.Publishing{Headers: table, Body: []byte("from elsewhere")}); err != nil {
		t.Fatal(err)
	}
	got := transporttest.Receive(t, subs["g"], 10*time.Second)
	if got.UUID != id {
		t.Errorf("uuid %s, want %s", got.UUID, id)
	}
	for _, h := range headers {
		v, ok := got.Metadata[h.key]
		switch {
		case !ok:
			t.Errorf("header %s (%T) missing from metadata %v", h.key, h.value, got.Metadata)
		case v != h.want:
			t.Errorf("header %s (%T) = %s, want %s", h.key, h.value, v, h.want)
		case h.key != "string" && !json.Valid([]byte(v)):
			t.Errorf("header %s (%T) = %s: not JSON", h.key, h.value, v)
		}
	}
}
