package eventstore

import (
	"errors"
	"fmt"
	"sync"

	"github.com/millrace/millrace/framework"
)

// Upcasters turn stored events of an old type version into the current
// one as they are read ("OrderPlaced.v1" into "OrderPlaced.v2"), so that
// code handles only the latest version of each event and stored events are
// never rewritten. Each upcaster goes one step, from one type name to
// another; steps chain (v1 → v2 → v3) and are applied until no upcaster
// takes the event's type.
//
// Give the same Upcasters to the store ([UpcastWith], package sql's
// UpcastWith): then every read path of the store (ReadStream, ReadAll, and
// whatever is built on them: aggregate loads, projections live and
// rebuilding, the outbox relay) returns upcast events, and none can forget
// to. A nil *Upcasters upcasts nothing.
//
// Register upcasters before the store is used; Upcasters is safe for
// concurrent use all the same.
type Upcasters struct {
	mu    sync.RWMutex
	steps map[string]step // by the type upcast from
}

type step struct {
	to string
	fn func(Event) (Event, error)
}

// NewUpcasters returns an empty registry.
func NewUpcasters() *Upcasters { return &Upcasters{} }

// Register adds fn as the upcaster of events of type from into type to.
// fn gets the stored event and returns it as type to: it changes Payload,
// and ContentType and Metadata if it needs to. Whatever it returns, the
// event keeps its ID, StreamID, Version, Position and RecordedAt, and gets
// Type to.
//
// It is an error to register a second upcaster from the same type, one
// from a type to itself, or one that closes a cycle (v2 → v1 when v1 → v2
// is registered): a chain must end.
func (u *Upcasters) Register(from, to string, fn func(Event) (Event, error)) error {
	switch {
	case from == "" || to == "":
		return errors.New("eventstore: register upcaster: empty type name")
	case from == to:
		return fmt.Errorf("eventstore: register upcaster from %s to itself", from)
	case fn == nil:
		return fmt.Errorf("eventstore: register upcaster from %s to %s: nil function", from, to)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if s, dup := u.steps[from]; dup {
		return fmt.Errorf("eventstore: register upcaster from %s to %s: %s already upcasts to %s", from, to, from, s.to)
	}
	// The chain from to must not lead back to from. Chains registered so
	// far end (by induction), so this walk does.
	for t := to; ; {
		s, ok := u.steps[t]
		if !ok {
			break
		}
		if s.to == from {
			return fmt.Errorf("eventstore: register upcaster from %s to %s: closes a cycle (%s leads back to %s)", from, to, to, from)
		}
		t = s.to
	}
	if u.steps == nil {
		u.steps = make(map[string]step)
	}
	u.steps[from] = step{to: to, fn: fn}
	return nil
}

// Latest returns the type name events of type typ are read as: the end of
// its chain of upcasters, or typ itself.
func (u *Upcasters) Latest(typ string) string {
	if u == nil {
		return typ
	}
	u.mu.RLock()
	defer u.mu.RUnlock()
	for {
		s, ok := u.steps[typ]
		if !ok {
			return typ
		}
		typ = s.to
	}
}

// Upcast returns e after the chain of upcasters for its type, or e itself
// if there is none. An upcaster's error is returned wrapped with the event
// it failed on.
func (u *Upcasters) Upcast(e Event) (Event, error) {
	if u == nil {
		return e, nil
	}
	for {
		s, ok := u.step(e.Type)
		if !ok {
			return e, nil
		}
		out, err := s.fn(e)
		if err != nil {
			return Event{}, fmt.Errorf("eventstore: upcast event %s (stream %q, version %d) from %s to %s: %w", e.ID, e.StreamID, e.Version, e.Type, s.to, err)
		}
		out.ID, out.StreamID, out.Version, out.Position, out.RecordedAt = e.ID, e.StreamID, e.Version, e.Position, e.RecordedAt
		out.Type = s.to
		e = out
	}
}

// step returns the upcaster from typ. The lock is not held while an
// upcaster runs, so an upcaster may use u.
func (u *Upcasters) step(typ string) (step, bool) {
	u.mu.RLock()
	s, ok := u.steps[typ]
	u.mu.RUnlock()
	return s, ok
}

// UpcastAll upcasts every event of events in place (see
// [Upcasters.Upcast]); stores call it on what they read.
func (u *Upcasters) UpcastAll(events []Event) error {
	if u == nil {
		return nil
	}
	for i := range events {
		e, err := u.Upcast(events[i])
		if err != nil {
			return err
		}
		events[i] = e
	}
	return nil
}

// Upcast registers with u the upcaster from events of Go type From to Go
// type To (their type names as [framework.TypeNameOf] gives them, for
// example "OrderPlaced.v1" and "OrderPlaced.v2"): it decodes the payload
// with codec, calls fn, and encodes fn's result with codec. Errors are
// those of [Upcasters.Register].
func Upcast[From, To any](u *Upcasters, codec framework.Codec, fn func(From) (To, error)) error {
	from, to := framework.TypeNameOf[From](), framework.TypeNameOf[To]()
	return u.Register(from, to, func(e Event) (Event, error) {
		var old From
		if err := codec.Unmarshal(e.Payload, &old); err != nil {
			return Event{}, fmt.Errorf("decode %s: %w", from, err)
		}
		v, err := fn(old)
		if err != nil {
			return Event{}, err
		}
		payload, err := codec.Marshal(v)
		if err != nil {
			return Event{}, fmt.Errorf("encode %s: %w", to, err)
		}
		e.Payload, e.ContentType = payload, codec.ContentType()
		return e, nil
	})
}
