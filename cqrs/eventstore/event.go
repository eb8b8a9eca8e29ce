package eventstore

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// Event is one stored event: what happened to one stream (an aggregate),
// the envelope it was recorded with, and where it sits in its stream and in
// the store's global order.
//
// On [Store.Append] the caller sets Type, Payload and, as it likes, ID,
// ContentType and Metadata; the store sets StreamID, Version, Position and
// RecordedAt (and ID, if it was empty). Every read path returns all fields.
type Event struct {
	// ID is the event's message id: the id it carries when it is published
	// (the outbox relay), and what deduplication recognises it by. Append
	// gives an event without one a new UUID.
	ID string
	// StreamID is the stream (aggregate) the event belongs to.
	StreamID string
	// Version is the event's place in its stream: 1 for the first event,
	// then one more for each event, without gaps.
	Version int64
	// Position is the event's place in the store's global order (see
	// [Position]).
	Position Position
	// Type is the event's type name, the message_type metadata of the
	// message it becomes, versioned as [framework.TypeName] names it
	// ("OrderPlaced.v2"). Upcasters (see [Upcasters]) are chosen by it.
	Type string
	// ContentType is the payload's media type ("application/json"), as the
	// codec that encoded it says (see [NewEvent]).
	ContentType string
	// Payload is the encoded event, stored and returned as is.
	Payload []byte
	// Metadata is the envelope the event was recorded with (correlation_id,
	// causation_id, published_by, ...: the millrace.Metadata* keys), and
	// whatever else the caller adds. Keys and values are strings. A read
	// returns nil for an event recorded without metadata.
	Metadata map[string]string
	// RecordedAt is when the store recorded the event, on the store's clock
	// (a database's, for SQL stores). Within a stream it does not decrease
	// as long as that clock does not go back.
	RecordedAt time.Time
}

// Position is a place in a store's global order: every event of a store has
// a distinct one, and [Store.ReadAll] returns events in increasing Position.
// The zero Position ([Start]) is before every event.
//
// A single increasing number cannot be commit-ordered on PostgreSQL without
// serialising commits: a sequence hands out numbers when rows are inserted,
// and a transaction that took a lower number may commit after one that took
// a higher number, so a reader that has passed the higher number skips the
// lower one for good. So a Position has two parts, compared in turn: Tx and
// Seq. The PostgreSQL store sets Tx to a transaction id (at least that of
// the appending transaction) and reads only events whose Tx is below the
// oldest transaction still running, which can never gain a row below it;
// Seq orders the events of one Tx. Stores that serialise their appends
// (memory, MySQL) number events in commit order in Seq alone and leave Tx
// zero.
//
// Positions are checkpoints: a reader stores the Position of the last event
// it handled (as text: [Position.String], [ParsePosition], or
// [Position.MarshalText]) and goes on from there. Positions of different
// stores are not comparable.
type Position struct {
	// Tx is the transaction part: a PostgreSQL transaction id, 0 on stores
	// that need none.
	Tx uint64
	// Seq is the sequence part, increasing within one Tx.
	Seq int64
}

// Start is the Position before every event: [Store.ReadAll] from Start
// reads a store from its beginning.
var Start = Position{}

// Less reports whether p comes before q in the global order.
func (p Position) Less(q Position) bool {
	if p.Tx != q.Tx {
		return p.Tx < q.Tx
	}
	return p.Seq < q.Seq
}

// Compare returns -1 if p comes before q, 1 if after, and 0 if they are
// equal; for slices.SortFunc and the like.
func (p Position) Compare(q Position) int {
	switch {
	case p.Less(q):
		return -1
	case q.Less(p):
		return 1
	}
	return 0
}

// String formats p as "<seq>" when Tx is zero and as "<tx>/<seq>"
// otherwise; [ParsePosition] reads both.
func (p Position) String() string {
	return string(p.appendText(nil))
}

func (p Position) appendText(b []byte) []byte {
	if p.Tx != 0 {
		b = strconv.AppendUint(b, p.Tx, 10)
		b = append(b, '/')
	}
	return strconv.AppendInt(b, p.Seq, 10)
}

// MarshalText implements encoding.TextMarshaler with the format of
// [Position.String], so a Position stored in JSON or YAML is a string.
func (p Position) MarshalText() ([]byte, error) {
	return p.appendText(nil), nil
}

// UnmarshalText implements encoding.TextUnmarshaler; see [ParsePosition].
func (p *Position) UnmarshalText(text []byte) error {
	q, err := ParsePosition(string(text))
	if err != nil {
		return err
	}
	*p = q
	return nil
}

var errBadPosition = errors.New(`want "<seq>" or "<tx>/<seq>" with decimal numbers, seq not negative`)

// ParsePosition reads a Position formatted by [Position.String].
func ParsePosition(s string) (Position, error) {
	var p Position
	seq := s
	if tx, rest, ok := strings.Cut(s, "/"); ok {
		n, err := strconv.ParseUint(tx, 10, 64)
		if err != nil {
			return Position{}, &positionError{s}
		}
		p.Tx, seq = n, rest
	}
	n, err := strconv.ParseInt(seq, 10, 64)
	if err != nil || n < 0 || (seq != "" && seq[0] == '+') {
		return Position{}, &positionError{s}
	}
	p.Seq = n
	return p, nil
}

type positionError struct{ s string }

func (e *positionError) Error() string {
	return "eventstore: invalid position " + strconv.Quote(e.s) + ": " + errBadPosition.Error()
}
