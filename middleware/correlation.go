package middleware

import (
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
)

// Correlation makes every message the handler returns carry a correlation
// id and a causation id, by [Correlate] with the handled message. The
// handled message itself is not modified. The framework's App stamps the
// messages a handler publishes the same way, by the same function; this
// middleware covers messages returned by raw handlers and plain Watermill
// routers. Unlike Watermill's CorrelationID it also sets the causation id
// and never overwrites ids already set.
func Correlation(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		produced, err := h(msg)
		for _, p := range produced {
			Correlate(msg, p)
		}
		return produced, err
	}
}

// Correlate sets the correlation and causation ids of out where it has
// none. When out is published because handled is being handled, out
// inherits handled's correlation id ([CorrelationID]) and gets handled's id
// as causation id. With handled nil, out starts a flow of its own: its
// correlation id is its own id, and it has no causation id. It is the one
// place millrace sets these ids.
//
// out also inherits handled's saga entries (saga_name, saga_id,
// saga_step) when it has none, and then, if it has no partition key, the
// saga id as its key: a participant's reply to a saga's command finds the
// saga instance, and one saga's messages are keyed by its id.
func Correlate(handled, out *message.Message) {
	if out.Metadata == nil {
		out.Metadata = message.Metadata{}
	}
	md := out.Metadata
	if handled == nil {
		if md[millrace.MetadataCorrelationID] == "" {
			md[millrace.MetadataCorrelationID] = out.UUID
		}
		return
	}
	if md[millrace.MetadataCorrelationID] == "" {
		md[millrace.MetadataCorrelationID] = CorrelationID(handled)
	}
	if md[millrace.MetadataCausationID] == "" {
		md[millrace.MetadataCausationID] = handled.UUID
	}
	if id := handled.Metadata[millrace.MetadataSagaID]; id != "" && md[millrace.MetadataSagaID] == "" {
		md[millrace.MetadataSagaID] = id
		md[millrace.MetadataSagaName] = handled.Metadata[millrace.MetadataSagaName]
		md[millrace.MetadataSagaStep] = handled.Metadata[millrace.MetadataSagaStep]
		if md[millrace.MetadataPartitionKey] == "" {
			md[millrace.MetadataPartitionKey] = id
		}
	}
}

// CorrelationID returns msg's correlation id, or its own id when it has none
// (it starts a flow).
func CorrelationID(msg *message.Message) string {
	if c := msg.Metadata.Get(millrace.MetadataCorrelationID); c != "" {
		return c
	}
	return msg.UUID
}
