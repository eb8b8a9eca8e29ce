package middleware

import (
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
)

// Correlation makes every message the handler returns carry a correlation
// id: it inherits the handled message's (or, when that has none because it
// starts a flow, the handled message's id), with the handled message's id as
// causation id. The handled message itself is not modified. The framework's
// App.Publish stamps messages published from a handler the same way; this
// middleware covers messages returned by raw handlers and plain Watermill
// routers. Unlike Watermill's CorrelationID it also sets the causation id and
// never overwrites ids already set.
func Correlation(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		produced, err := h(msg)
		if len(produced) == 0 {
			return produced, err
		}
		corr := CorrelationID(msg)
		for _, p := range produced {
			if p.Metadata.Get(millrace.MetadataCorrelationID) == "" {
				p.Metadata.Set(millrace.MetadataCorrelationID, corr)
			}
			if p.Metadata.Get(millrace.MetadataCausationID) == "" {
				p.Metadata.Set(millrace.MetadataCausationID, msg.UUID)
			}
		}
		return produced, err
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
