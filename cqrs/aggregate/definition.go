package aggregate

import (
	"errors"
	"fmt"
	"strings"

	"github.com/millrace/millrace/cqrs/eventstore"
	"github.com/millrace/millrace/framework"
)

// Definition describes an aggregate type to its [Repository]: its name, how
// to make an empty one, the events it records, and the codec of its events
// and snapshots.
type Definition[A Aggregate] struct {
	// Type names the aggregate type: its streams are "<Type>-<id>", its
	// snapshots carry it, and [eventstore.SnapshotPolicy.PerType] is keyed
	// by it. Required.
	Type string
	// New returns an empty aggregate (state before its first event).
	// Required.
	New func() A
	// Events are the event types the aggregate records and applies, made by
	// [Event]. A stored event of another type (after upcasting) fails the
	// load, and so does recording one. Required.
	Events []EventType
	// Codec encodes events and snapshots; default framework.JSON.
	Codec framework.Codec
	// StateVersion is the version of the aggregate's state as snapshots
	// encode it. Change it whenever the aggregate's fields change shape:
	// snapshots of another state version are ignored (the stream is read
	// from its first event) rather than decoded wrongly.
	StateVersion int
}

// Stream returns the stream id of the aggregate with id: "<Type>-<id>".
func (d Definition[A]) Stream(id string) string { return d.Type + "-" + id }

// EventType is one event type of a [Definition], made by [Event].
type EventType struct {
	name   string
	decode func(c framework.Codec, e eventstore.Event) (any, error)
}

// Name returns the event type's name, as stored events carry it
// ([framework.TypeNameOf]).
func (t EventType) Name() string { return t.name }

// Event returns the event type of Go type E, for [Definition.Events]:
// stored events of its type name are decoded into an E and applied as
// such.
func Event[E any]() EventType {
	name := framework.TypeNameOf[E]()
	return EventType{name: name, decode: func(c framework.Codec, e eventstore.Event) (any, error) {
		var v E
		if err := c.Unmarshal(e.Payload, &v); err != nil {
			return nil, fmt.Errorf("aggregate: decode event %s (stream %q, version %d) as %s: %w", e.ID, e.StreamID, e.Version, name, err)
		}
		return v, nil
	}}
}

// compiled is a validated Definition.
type compiled[A Aggregate] struct {
	Definition[A]
	byName map[string]EventType
}

// compile validates d, naming every field that is wrong.
func compile[A Aggregate](d Definition[A]) (compiled[A], error) {
	var problems []string
	if d.Type == "" {
		problems = append(problems, "Type is empty")
	}
	if d.New == nil {
		problems = append(problems, "New is nil")
	}
	if len(d.Events) == 0 {
		problems = append(problems, "Events is empty")
	}
	byName := make(map[string]EventType, len(d.Events))
	for i, et := range d.Events {
		switch {
		case et.decode == nil:
			problems = append(problems, fmt.Sprintf("Events[%d] was not made by aggregate.Event", i))
		case et.name == "":
			problems = append(problems, fmt.Sprintf("Events[%d] has no type name", i))
		default:
			if _, dup := byName[et.name]; dup {
				problems = append(problems, fmt.Sprintf("Events[%d]: %s is there twice", i, et.name))
			}
			byName[et.name] = et
		}
	}
	if len(problems) > 0 {
		return compiled[A]{}, errors.New("aggregate: definition " + quoteType(d.Type) + ": " + strings.Join(problems, "; "))
	}
	if d.Codec == nil {
		d.Codec = framework.JSON{}
	}
	return compiled[A]{Definition: d, byName: byName}, nil
}

func quoteType(t string) string {
	if t == "" {
		return "(no Type)"
	}
	return fmt.Sprintf("%q", t)
}
