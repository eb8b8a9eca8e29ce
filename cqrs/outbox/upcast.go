package outbox

import (
	"log/slog"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/cqrs/eventstore"
)

// upcast turns m into the latest version of its type with the configured
// upcasters, in place. A message whose upcaster fails is published as it
// is, with a warning: its consumers decide what an old version means (it
// fails to decode, and goes to their poison queue), rather than the relay
// stopping at it for ever.
func (o *Outbox) upcast(m *message.Message) {
	u := o.cfg.Upcasters
	typ := m.Metadata.Get(millrace.MetadataType)
	if u == nil || typ == "" || u.Latest(typ) == typ {
		return
	}
	e, err := u.Upcast(eventstore.Event{
		ID: m.UUID, StreamID: m.Metadata.Get(millrace.MetadataEntityID), Type: typ,
		ContentType: m.Metadata.Get(millrace.MetadataContentType), Payload: m.Payload, Metadata: m.Metadata,
	})
	if err != nil {
		o.app.Logger().Warn("outbox relay: upcast failed; the message is published as it was written", slog.String("message_id", m.UUID), slog.String("message_type", typ), slog.Any("error", err))
		return
	}
	m.Payload = e.Payload
	if e.Metadata != nil {
		m.Metadata = e.Metadata
	}
	m.Metadata.Set(millrace.MetadataType, e.Type)
	if e.ContentType != "" {
		m.Metadata.Set(millrace.MetadataContentType, e.ContentType)
	}
}
