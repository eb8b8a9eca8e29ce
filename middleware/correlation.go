package middleware

import (
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
)

// Correlation makes every message carry a correlation id: a handled message
// without one gets its own id as correlation id (it starts a flow), and every
// message the handler returns inherits it, with the handled message's id as
// causation id. The framework's App.Publish stamps messages published from a
// handler the same way; this middleware covers messages returned by raw
// handlers and plain Watermill routers. Unlike Watermill's CorrelationID it
// also sets the causation id and never overwrites ids already set.
func Correlation(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		corr := msg.Metadata.Get(millrace.MetadataCorrelationID)
		if corr == "" {
			corr = msg.UUID
			msg.Metadata.Set(millrace.MetadataCorrelationID, corr)
		}
		produced, err := h(msg)
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
