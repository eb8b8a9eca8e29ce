package projection

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/cqrs/eventstore"
	"github.com/millrace/millrace/cqrs/outbox"
	"github.com/millrace/millrace/framework"
)

// Consume registers on app a handler, named after the projection, that
// applies the events it consumes from topic on the transport to the live
// generation of the read model: the projection of a service that gets the
// events as messages rather than reading the event store. Each message's
// writes and its "handled" mark commit in one transaction through o's inbox
// ([outbox.Outbox.InTx]; the App's dedup store must be SQL, in the read
// model's database), so a redelivered event is applied once. It is an App
// handler: the default middleware retries, and poisons, an event whose
// handler keeps failing; opts are the App's handler options.
//
// Messages carry no global position, so such a projection has no
// checkpoint to rebuild from: [Projector.Rebuild] (which reads the store)
// is for projections that follow the store. The handlers see the message
// as an [eventstore.Event]: its id, type, content type, payload and
// metadata, and the entity_id as StreamID; Version and Position are zero.
func (p *Projector) Consume(app *framework.App, o *outbox.Outbox, topic string, opts ...framework.HandlerOption) {
	names := make([]string, 0, len(p.handlers))
	for name := range p.handlers {
		names = append(names, name)
	}
	head := p.st.bind("SELECT generation FROM " + p.st.heads + " WHERE projection = ?")
	framework.HandleRaw(app, p.def.Name, topic, func(msg *message.Message) ([]*message.Message, error) {
		e := eventstore.Event{
			ID: msg.UUID, StreamID: msg.Metadata.Get(millrace.MetadataEntityID), Type: msg.Metadata.Get(millrace.MetadataType),
			ContentType: msg.Metadata.Get(millrace.MetadataContentType), Payload: msg.Payload, Metadata: msg.Metadata,
		}
		h, ok := p.handlers[e.Type]
		if !ok {
			return nil, nil
		}
		return nil, o.InTx(msg.Context(), func(ctx context.Context, tx *sql.Tx) error {
			var g Generation
			if err := tx.QueryRowContext(ctx, head, p.def.Name).Scan(&g.n); err != nil {
				return fmt.Errorf("projection %s: read the live generation: %w", p.def.Name, err)
			}
			return h.apply(ctx, tx, g, p.def.Codec, e)
		})
	}, append([]framework.HandlerOption{framework.MessageTypes(names...)}, opts...)...)
}
