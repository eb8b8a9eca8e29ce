package projection

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/millrace/millrace/cqrs/eventstore"
	"github.com/millrace/millrace/framework"
)

// Definition is what a projection is: a name, the read model's tables, how
// to create them, and a handler per event type that writes to them.
type Definition struct {
	// Name identifies the projection: its checkpoints and locks. A letter
	// or underscore, then letters, digits and underscores, at most 40
	// bytes. Required.
	Name string
	// Tables are the names of the read model's tables as readers see them:
	// each is a view of the live generation's table (see [Generation]).
	// Same rules as Name. A projection without tables of its own (one that
	// writes through the outbox, say) has none.
	Tables []string
	// Schema returns the statements that create the read model's tables of
	// generation g, named by g.Table. Required with Tables.
	Schema func(g Generation) []string
	// Handlers apply events to the read model, one per event type (made by
	// [On]); events of other types are skipped. Required.
	Handlers []Handler
	// Codec decodes the events' payloads; default framework.JSON.
	Codec framework.Codec
}

// Generation is one build of a projection's read model: its tables are
// "<table>_g<N>". The live generation serves readers (through views named
// after the tables); a rebuild fills the next one from the first event,
// then makes it live.
type Generation struct {
	n int
}

// Number returns the generation's number, from 1.
func (g Generation) Number() int { return g.n }

// Table returns the name of this generation's table of the read model's
// table name: "<name>_g<N>". Use it in Schema and in handlers; readers use
// name itself, the view of the live generation.
func (g Generation) Table(name string) string {
	return name + "_g" + strconv.Itoa(g.n)
}

// Handler applies the events of one type to a read model, made by [On].
type Handler struct {
	name  string
	apply func(ctx context.Context, tx *sql.Tx, g Generation, c framework.Codec, e eventstore.Event) error
}

// On returns the handler of events of Go type E (stored as
// [framework.TypeNameOf] names it, after upcasting) that calls fn with the
// decoded event and the stored one (its stream, version, position,
// metadata). fn writes to g's tables in tx, which commits with the
// projection's checkpoint: an event is applied exactly once, or the batch
// it is in is retried. fn must not commit or roll back tx.
func On[E any](fn func(ctx context.Context, tx *sql.Tx, g Generation, e E, stored eventstore.Event) error) Handler {
	name := framework.TypeNameOf[E]()
	return Handler{name: name, apply: func(ctx context.Context, tx *sql.Tx, g Generation, c framework.Codec, e eventstore.Event) error {
		var v E
		if err := c.Unmarshal(e.Payload, &v); err != nil {
			return fmt.Errorf("decode event %s (stream %q, version %d) as %s: %w", e.ID, e.StreamID, e.Version, name, err)
		}
		return fn(ctx, tx, g, v, e)
	}}
}

// validate checks d, naming every bad field, and returns its handlers by
// type name.
func (d *Definition) validate() (map[string]Handler, error) {
	var problems []string
	if !identifier.MatchString(d.Name) {
		problems = append(problems, fmt.Sprintf("Name %q: a letter or underscore, then letters, digits and underscores, at most 40", d.Name))
	}
	seen := map[string]bool{}
	for i, t := range d.Tables {
		switch {
		case !identifier.MatchString(t):
			problems = append(problems, fmt.Sprintf("Tables[%d] %q: a letter or underscore, then letters, digits and underscores, at most 40", i, t))
		case seen[t]:
			problems = append(problems, fmt.Sprintf("Tables[%d] %q is there twice", i, t))
		}
		seen[t] = true
	}
	if d.Schema == nil && len(d.Tables) > 0 {
		problems = append(problems, "Schema is nil")
	}
	if len(d.Handlers) == 0 {
		problems = append(problems, "Handlers is empty")
	}
	byType := make(map[string]Handler, len(d.Handlers))
	for i, h := range d.Handlers {
		if h.apply == nil {
			problems = append(problems, fmt.Sprintf("Handlers[%d] was not made by projection.On", i))
			continue
		}
		if _, dup := byType[h.name]; dup {
			problems = append(problems, fmt.Sprintf("Handlers[%d]: %s is handled twice", i, h.name))
		}
		byType[h.name] = h
	}
	if len(problems) > 0 {
		return nil, errors.New("projection: definition " + strconv.Quote(d.Name) + ": " + strings.Join(problems, "; "))
	}
	if d.Codec == nil {
		d.Codec = framework.JSON{}
	}
	return byType, nil
}
