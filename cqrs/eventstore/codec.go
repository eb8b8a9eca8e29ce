package eventstore

import (
	"fmt"

	"github.com/millrace/millrace/framework"
)

// NewEvent returns the event that records v: its payload encoded by codec,
// its type name [framework.TypeName] of v, its content type codec's, and
// metadata as given (the envelope: correlation_id, causation_id, ...; it is
// not copied). ID, StreamID, Version and Position are left to
// [Store.Append].
func NewEvent(codec framework.Codec, v any, metadata map[string]string) (Event, error) {
	typ := framework.TypeName(v)
	if typ == "" {
		return Event{}, fmt.Errorf("eventstore: new event: %T has no type name", v)
	}
	payload, err := codec.Marshal(v)
	if err != nil {
		return Event{}, fmt.Errorf("eventstore: encode %s: %w", typ, err)
	}
	return Event{Type: typ, ContentType: codec.ContentType(), Payload: payload, Metadata: metadata}, nil
}

// Decode decodes e's payload with codec into v, a pointer to the Go type
// of e's type name. It refuses an event of another type name (an old
// version without an upcaster, or the wrong type), which codecs such as
// JSON would otherwise decode into whatever fields happen to match.
func Decode(codec framework.Codec, e Event, v any) error {
	if want := framework.TypeName(v); e.Type != want {
		return fmt.Errorf("eventstore: decode event %s (stream %q, version %d): it is a %s, not a %s", e.ID, e.StreamID, e.Version, e.Type, want)
	}
	if err := codec.Unmarshal(e.Payload, v); err != nil {
		return fmt.Errorf("eventstore: decode event %s (stream %q, version %d) as %s: %w", e.ID, e.StreamID, e.Version, e.Type, err)
	}
	return nil
}
