package amqp

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/millrace/millrace/transports"
)

// MetadataPriority is the metadata key that sets a message's AMQP priority
// (basic.properties priority), a decimal from 0 to 255. It matters only on
// queues declared with a maximum priority (queue.max_priority); there the
// broker delivers higher priorities first. Publish fails for a value that is
// not a number in range. The key stays in the message's metadata.
const MetadataPriority = "amqp_priority"

// errPriority is returned by Marshal for a bad MetadataPriority value.
var errPriority = errors.New("amqp: metadata " + MetadataPriority + " must be a number from 0 to 255")

// marshaler is watermill-amqp's DefaultMarshaler (metadata as string AMQP
// headers, the UUID in header _watermill_message_uuid) with what millrace
// adds:
//
//   - Marshal also sets the AMQP message-id property to the UUID, so that
//     clients other than Watermill see an id, and the priority from
//     MetadataPriority. It does not forward watermill-amqp's redelivered
//     flag: a republished message is a new delivery.
//   - Unmarshal accepts messages it did not write. RabbitMQ stamps
//     dead-lettered messages (every delayed one) with x-death, a table, and
//     other clients may set non-string headers. DefaultMarshaler refuses
//     those, and watermill-amqp answers a refused delivery with a requeueing
//     nack, so the message would loop forever. Here the x-death family is
//     dropped and other non-string values become their fmt text. A message
//     without the UUID header (a foreign publisher's) gets the id
//     "amqp:<message-id>", or a random UUID when it has no message-id (see
//     transports.EnsureUUID).
type marshaler struct{ wamqp.DefaultMarshaler }

func (m marshaler) Marshal(msg *message.Message) (amqp091.Publishing, error) {
	p, err := m.DefaultMarshaler.Marshal(msg)
	if err != nil {
		return p, err
	}
	delete(p.Headers, wamqp.MetadataRedeliveredKey)
	p.MessageId = msg.UUID
	if v, ok := msg.Metadata[MetadataPriority]; ok {
		prio, err := strconv.ParseUint(v, 10, 8)
		if err != nil {
			return p, fmt.Errorf("%w, got %q", errPriority, v)
		}
		p.Priority = uint8(prio)
	}
	return p, nil
}

func (m marshaler) Unmarshal(d amqp091.Delivery) (*message.Message, error) {
	var id string
	md := make(message.Metadata, len(d.Headers))
	for k, v := range d.Headers {
		s, isString := v.(string)
		switch {
		case k == wamqp.DefaultMessageUUIDHeaderKey:
			if isString {
				id = s
			}
		case isDeathHeader(k):
		case isString:
			md[k] = s
		default:
			md[k] = fmt.Sprint(v)
		}
	}
	msg := message.NewMessage(id, d.Body)
	msg.Metadata = md
	transports.EnsureUUID(msg, "amqp", d.MessageId)
	return msg, nil
}

// isDeathHeader reports whether k is one of the headers RabbitMQ adds when it
// dead-letters a message.
func isDeathHeader(k string) bool {
	return k == "x-death" || strings.HasPrefix(k, "x-first-death-") || strings.HasPrefix(k, "x-last-death-")
}
