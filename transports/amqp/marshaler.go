package amqp

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/transports"
)

// MetadataPriority is the metadata key that sets a message's AMQP priority
// (basic.properties priority), a decimal from 0 to 255. It matters only on
// queues declared with a maximum priority (queue.max_priority); there the
// broker delivers higher priorities first. Publish fails for a value that is
// not a number in range. The key stays in the message's metadata.
const MetadataPriority = "amqp_priority"

// MetadataExpiration is the metadata key that sets a message's AMQP
// expiration (basic.properties expiration): a Go duration such as "30s" or
// "1500ms", rounded down to milliseconds, after which the broker drops the
// message, or dead-letters it, if it is still in a queue. Publish fails for
// a value that is not a duration of at least 1ms. A delivered message that
// had an expiration carries it under this key, so a message passed on keeps
// it; but a delayed copy (Delay) and a message set aside in the poison queue
// (one with poison_reason) never expire. The key stays in the message's
// metadata.
const MetadataExpiration = "amqp_expiration"

// errPriority is returned by Marshal for a bad MetadataPriority value.
var errPriority = errors.New("amqp: metadata " + MetadataPriority + " must be a number from 0 to 255")

// errExpiration is returned by Marshal for a bad MetadataExpiration value.
var errExpiration = errors.New("amqp: metadata " + MetadataExpiration + ` must be a duration of at least 1ms, such as "30s"`)

// properties maps AMQP message properties to the metadata keys millrace
// sets and reads them from, besides the headers every metadata key travels
// in: the message-id is the UUID, the timestamp is published_at, and
// expiration and priority have keys of their own.
var properties = []struct {
	key string
	get func(*amqp091.Delivery) string
	set func(*amqp091.Publishing, string)
}{
	{millrace.MetadataContentType, func(d *amqp091.Delivery) string { return d.ContentType }, func(p *amqp091.Publishing, v string) { p.ContentType = v }},
	{millrace.MetadataCorrelationID, func(d *amqp091.Delivery) string { return d.CorrelationId }, func(p *amqp091.Publishing, v string) { p.CorrelationId = v }},
	{millrace.MetadataType, func(d *amqp091.Delivery) string { return d.Type }, func(p *amqp091.Publishing, v string) { p.Type = v }},
	{millrace.MetadataPublishedBy, func(d *amqp091.Delivery) string { return d.AppId }, func(p *amqp091.Publishing, v string) { p.AppId = v }},
	{millrace.MetadataReplyTo, func(d *amqp091.Delivery) string { return d.ReplyTo }, func(p *amqp091.Publishing, v string) { p.ReplyTo = v }},
}

// marshaler is watermill-amqp's DefaultMarshaler (metadata as string AMQP
// headers, the UUID in header _watermill_message_uuid) with what millrace
// adds:
//
//   - Marshal also sets the AMQP properties that other clients read: the
//     message-id (the UUID), content-type (metadata content_type),
//     correlation-id (correlation_id), type (message_type), app-id
//     (published_by), reply-to (reply_to), timestamp (published_at, to the
//     second), expiration (MetadataExpiration) and priority
//     (MetadataPriority); a value longer than an AMQP short string (255
//     bytes) is left out of its property and kept in its header. It does
//     not forward watermill-amqp's redelivered
//     flag: a republished message is a new delivery.
//   - Unmarshal accepts messages it did not write, and reads those
//     properties back into the metadata keys they come from when no header
//     gives the key (a header wins: millrace writes both, and a header keeps
//     published_at's nanoseconds). RabbitMQ stamps dead-lettered messages
//     (every delayed one) with x-death, a table, and other clients may set
//     non-string headers. DefaultMarshaler refuses those, and watermill-amqp
//     answers a refused delivery with a requeueing nack, so the message
//     would loop forever. Here the x-death family is dropped and other
//     non-string values become JSON text (see headerText). A message
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
	for _, prop := range properties {
		// AMQP short strings hold 255 bytes: a longer value stays in its
		// header only (amqp091 would cut it short on the wire).
		if v := msg.Metadata[prop.key]; v != "" && len(v) <= 255 {
			prop.set(&p, v)
		}
	}
	if v := msg.Metadata[millrace.MetadataPublishedAt]; v != "" {
		// Another format is left out of the property, not refused: the
		// header carries it as it is.
		if at, err := time.Parse(time.RFC3339Nano, v); err == nil {
			p.Timestamp = at
		}
	}
	if v, ok := msg.Metadata[MetadataPriority]; ok {
		prio, err := strconv.ParseUint(v, 10, 8)
		if err != nil {
			return p, fmt.Errorf("%w, got %q", errPriority, v)
		}
		p.Priority = uint8(prio)
	}
	if v, ok := msg.Metadata[MetadataExpiration]; ok && msg.Metadata[millrace.MetadataPoisonReason] == "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Millisecond {
			return p, fmt.Errorf("%w, got %q", errExpiration, v)
		}
		p.Expiration = strconv.FormatInt(d.Milliseconds(), 10)
	}
	return p, nil
}

func (m marshaler) Unmarshal(d amqp091.Delivery) (*message.Message, error) {
	var id string
	md := make(message.Metadata, len(d.Headers)+4)
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
			md[k] = headerText(v)
		}
	}
	for _, prop := range properties {
		if v := prop.get(&d); v != "" && md[prop.key] == "" {
			md[prop.key] = v
		}
	}
	if !d.Timestamp.IsZero() && md[millrace.MetadataPublishedAt] == "" {
		md[millrace.MetadataPublishedAt] = d.Timestamp.UTC().Format(time.RFC3339Nano)
	}
	if d.Priority > 0 && md[MetadataPriority] == "" {
		md[MetadataPriority] = strconv.Itoa(int(d.Priority))
	}
	if d.Expiration != "" && md[MetadataExpiration] == "" {
		if ms, err := strconv.ParseInt(d.Expiration, 10, 64); err == nil && ms > 0 {
			md[MetadataExpiration] = (time.Duration(ms) * time.Millisecond).String()
		}
	}
	msg := message.NewMessage(id, d.Body)
	msg.Metadata = md
	transports.EnsureUUID(msg, "amqp", d.MessageId)
	return msg, nil
}

// headerText is the JSON text of a header value that is not a string:
// 3, true, 2.5, "2026-12-01T10:00:00Z" (a timestamp), "aGk=" (a byte array,
// base64), {"a":1} (a table), [1,"x"] (an array), 12.50 (a decimal). A
// value JSON cannot encode (a float that is not finite) becomes its Go
// text.
func headerText(v any) string {
	b, err := json.Marshal(jsonValue(v))
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// jsonValue returns v with what encoding/json would not write as AMQP
// means it made plain: decimals as numbers, within tables and arrays too.
func jsonValue(v any) any {
	switch v := v.(type) {
	case amqp091.Table:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = jsonValue(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = jsonValue(e)
		}
		return out
	case amqp091.Decimal:
		return json.Number(decimalText(v))
	default:
		return v
	}
}

// decimalText writes d (Value × 10^-Scale) in decimal notation.
func decimalText(d amqp091.Decimal) string {
	digits := strconv.FormatInt(int64(d.Value), 10)
	neg := strings.HasPrefix(digits, "-")
	digits = strings.TrimPrefix(digits, "-")
	if scale := int(d.Scale); scale > 0 {
		if len(digits) <= scale {
			digits = strings.Repeat("0", scale-len(digits)+1) + digits
		}
		digits = digits[:len(digits)-scale] + "." + digits[len(digits)-scale:]
	}
	if neg {
		digits = "-" + digits
	}
	return digits
}

// isDeathHeader reports whether k is one of the headers RabbitMQ adds when it
// dead-letters a message.
func isDeathHeader(k string) bool {
	return k == "x-death" || strings.HasPrefix(k, "x-first-death-") || strings.HasPrefix(k, "x-last-death-")
}
