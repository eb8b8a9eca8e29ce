package amqp

import (
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/millrace/millrace"
)

func TestMarshaler_Properties(t *testing.T) {
	long := strings.Repeat("c", 300)
	tests := []struct {
		name      string
		metadata  message.Metadata
		wantProp  func(p amqp091.Publishing) string
		wantValue string
	}{
		{"short correlation id in its property", message.Metadata{millrace.MetadataCorrelationID: "c-1"}, func(p amqp091.Publishing) string { return p.CorrelationId }, "c-1"},
		{"a correlation id over 255 bytes only in its header", message.Metadata{millrace.MetadataCorrelationID: long}, func(p amqp091.Publishing) string { return p.CorrelationId }, ""},
		{"priority", message.Metadata{MetadataPriority: "7"}, func(p amqp091.Publishing) string { return string('0' + rune(p.Priority)) }, "7"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg := message.NewMessage("id-1", []byte("x"))
			msg.Metadata = tc.metadata
			p, err := marshaler{}.Marshal(msg)
			if err != nil {
				t.Fatal(err)
			}
			if got := tc.wantProp(p); got != tc.wantValue {
				t.Errorf("property %q, want %q", got, tc.wantValue)
			}
			for k, v := range tc.metadata {
				if p.Headers[k] != v {
					t.Errorf("header %s = %v, want %q", k, p.Headers[k], v)
				}
			}
		})
	}
}

func TestUnmarshal_PriorityOfAForeignMessage(t *testing.T) {
	msg, err := marshaler{}.Unmarshal(amqp091.Delivery{MessageId: "f-1", Priority: 9, Body: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	if got := msg.Metadata.Get(MetadataPriority); got != "9" {
		t.Errorf("%s = %q, want 9", MetadataPriority, got)
	}
	msg, err = marshaler{}.Unmarshal(amqp091.Delivery{MessageId: "f-2", Body: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := msg.Metadata[MetadataPriority]; ok {
		t.Errorf("priority 0 (not set) read back as %q", msg.Metadata.Get(MetadataPriority))
	}
}
