package aggregate

import "slices"

// Root is the part every event-sourced aggregate shares: its id, the
// version of the last stored event it has applied, and the events recorded
// since it was loaded that are not saved yet. Embed it in the aggregate's
// struct; the aggregate's own fields are its state, changed only by its
// Apply method.
//
//	type Order struct {
//		aggregate.Root
//		Status string
//	}
//
// Root has no exported fields: a snapshot (the codec's encoding of the
// aggregate) holds the aggregate's own state, and the repository sets the
// id and version.
type Root struct {
	id      string
	version int64
	changes []any
}

// ID returns the aggregate's id (its stream is "<type>-<id>", see
// [Definition.Stream]).
func (r *Root) ID() string { return r.id }

// Version returns the version of the last stored event the aggregate has
// applied: 0 for an aggregate that has no stored events yet. Recorded
// events that are not saved do not count.
func (r *Root) Version() int64 { return r.version }

// Uncommitted returns the events recorded since the aggregate was loaded or
// last saved, in order. The slice is the aggregate's: do not change it.
func (r *Root) Uncommitted() []any { return r.changes }

func (r *Root) root() *Root { return r }

// Aggregate is an event-sourced aggregate: a pointer to a struct that
// embeds [Root] and applies events to its state.
type Aggregate interface {
	// Apply changes the state by one event, a value of one of the event
	// types of the aggregate's [Definition]. It is called for every stored
	// event when the aggregate is loaded and for every event [Record]ed, so
	// it must not fail nor do anything but change the state: an event is a
	// fact, and its consequences were decided before it was recorded.
	Apply(event any)

	// ID, Version and Uncommitted are [Root]'s.
	ID() string
	Version() int64
	Uncommitted() []any

	root() *Root
}

// Record records event as happened to a: it applies it (a.Apply) and
// keeps it among the uncommitted events that the next save stores. This is
// how a command method changes an aggregate:
//
//	func (o *Order) Pay(amount int) error {
//		if o.Status != "placed" {
//			return ErrNotPayable
//		}
//		aggregate.Record(o, OrderPaid{Amount: amount})
//		return nil
//	}
func Record(a Aggregate, event any) {
	a.Apply(event)
	r := a.root()
	r.changes = append(r.changes, event)
}

// reset makes a's root the one of aggregate id at version, with no
// uncommitted events.
func reset(a Aggregate, id string, version int64) {
	r := a.root()
	r.id, r.version, r.changes = id, version, slices.Clip(r.changes[:0])
}
