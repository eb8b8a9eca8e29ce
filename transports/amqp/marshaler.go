package amqp

import (
	"fmt"
	"strings"

	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"
)

// marshaler is watermill-amqp's DefaultMarshaler (metadata as string AMQP
// headers, the UUID in header _watermill_message_uuid) made tolerant of
// headers it did not write: RabbitMQ stamps dead-lettered messages (every
// delayed one) with x-death, a table, and other clients may set non-string
// headers. DefaultMarshaler refuses those, and watermill-amqp answers a
// refused delivery with a requeueing nack, so the message would loop
// forever. Here the x-death family is dropped and other non-string values
// become their fmt text.
type marshaler struct{ wamqp.DefaultMarshaler }

func (m marshaler) Unmarshal(d amqp091.Delivery) (*message.Message, error) {
	clean := true
	for k, v := range d.Headers {
		if _, ok := v.(string); !ok || isDeathHeader(k) {
			clean = false
			break
		}
	}
	if !clean {
		h := make(amqp091.Table, len(d.Headers))
		for k, v := range d.Headers {
			if isDeathHeader(k) {
				continue
			}
			if s, ok := v.(string); ok {
				h[k] = s
			} else {
				h[k] = fmt.Sprint(v)
			}
		}
		d.Headers = h
	}
	return m.DefaultMarshaler.Unmarshal(d)
}

// isDeathHeader reports whether k is one of the headers RabbitMQ adds when it
// dead-letters a message.
func isDeathHeader(k string) bool {
	return k == "x-death" || strings.HasPrefix(k, "x-first-death-") || strings.HasPrefix(k, "x-last-death-")
}
