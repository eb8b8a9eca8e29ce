package cqrs

import (
	"fmt"
	"reflect"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"google.golang.org/protobuf/proto"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/framework"
)

// Protobuf is a [framework.Codec] for Protocol Buffers messages
// (google.golang.org/protobuf), content type "application/x-protobuf".
// Message types must be generated proto messages; handlers take them as
// pointers (func(ctx, *pb.OrderPlaced) error), as generated types must not
// be copied.
type Protobuf struct{}

// ProtobufContentType is the content_type of messages [Protobuf] encodes.
const ProtobufContentType = "application/x-protobuf"

// Marshal encodes v, a proto.Message.
func (Protobuf) Marshal(v any) ([]byte, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("protobuf: %T is not a proto.Message", v)
	}
	return proto.Marshal(m)
}

// Unmarshal decodes data into v, a proto.Message (a pointer to a generated
// message, or a pointer to such a pointer, which is allocated).
func (Protobuf) Unmarshal(data []byte, v any) error {
	if m, ok := v.(proto.Message); ok {
		return proto.Unmarshal(data, m)
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer && rv.Elem().Kind() == reflect.Pointer {
		if rv.Elem().IsNil() {
			rv.Elem().Set(reflect.New(rv.Elem().Type().Elem()))
		}
		if m, ok := rv.Elem().Interface().(proto.Message); ok {
			return proto.Unmarshal(data, m)
		}
	}
	return fmt.Errorf("protobuf: %T is not a proto.Message", v)
}

// ContentType returns [ProtobufContentType].
func (Protobuf) ContentType() string { return ProtobufContentType }

// codecs are the codecs of a bus: one to send with, and the ones it
// decodes, chosen by each message's content_type.
type codecs struct {
	send framework.Codec
}

// decoder returns the codec for a message with content type ct: JSON,
// Protobuf, or the sending codec for any other (and for none, as foreign
// clients often set none).
func (c codecs) decoder(ct string) framework.Codec {
	switch ct {
	case c.send.ContentType():
		return c.send
	case framework.JSON{}.ContentType():
		return framework.JSON{}
	case ProtobufContentType:
		return Protobuf{}
	}
	return c.send
}

// Decode decodes msg's payload into v, a pointer, with the codec its
// content_type names (JSON, [Protobuf], or the bus's own for any other), as
// the bus's handlers do: for raw handlers and tests.
func (b *Bus) Decode(msg *message.Message, v any) error {
	return b.codecs.decoder(msg.Metadata.Get(millrace.MetadataContentType)).Unmarshal(msg.Payload, v)
}

// decode decodes msg's payload into a T. A payload that does not decode is
// a permanent [framework.DecodeError].
func decode[T any](c codecs, name string, msg *message.Message) (T, error) {
	var v T
	codec := c.decoder(msg.Metadata.Get(millrace.MetadataContentType))
	if err := codec.Unmarshal(msg.Payload, &v); err != nil {
		return v, millrace.Permanent(&framework.DecodeError{Type: name, MessageID: msg.UUID, Err: err})
	}
	return v, nil
}

// Message returns v as the message the bus would send or publish for it,
// and the topic it would go to: encoded with the bus's codec, with its type
// name, content type and entity key, and opts applied. The envelope's ids
// and times are stamped when it is published ([framework.App.Stamp]). The
// transactional outbox writes such messages in a database transaction and
// publishes them later. group is the consumer group that handles T when T
// is a command or query ([HandleCommand]): what [Send] prepares the topic
// for ([framework.App.Prepare]) before it sends.
func Message[T any](b *Bus, v T, opts ...framework.PublishOption) (topic, group string, msg *message.Message, err error) {
	in := infoOf[T](b)
	msg, err = b.encode(in.name, v, opts)
	return in.topic, in.group, msg, err
}

// encode builds the message for v of type name.
func (b *Bus) encode(name string, v any, opts []framework.PublishOption) (*message.Message, error) {
	payload, err := b.codecs.send.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("cqrs: encode %s: %w", name, err)
	}
	msg := message.NewMessage(watermill.NewUUID(), payload)
	msg.Metadata.Set(millrace.MetadataType, name)
	msg.Metadata.Set(millrace.MetadataContentType, b.codecs.send.ContentType())
	if e, ok := v.(Entity); ok {
		if id := e.EntityID(); id != "" {
			msg.Metadata.Set(millrace.MetadataEntityID, id)
			msg.Metadata.Set(millrace.MetadataPartitionKey, id)
		}
	}
	for _, opt := range opts {
		opt(msg)
	}
	return msg, nil
}
