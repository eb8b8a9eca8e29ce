package eventstore

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"time"
)

// Expected versions for [Store.Append]. Any other expected version n ≥ 1
// requires the stream's current version to be n.
const (
	// Any appends whatever the stream's version: no concurrency check.
	Any int64 = -1
	// NoStream requires that the stream has no events yet.
	NoStream int64 = 0
)

// Store keeps events in streams and in one global order. Implementations
// are safe for concurrent use; the ones millrace ships are [Memory] and
// package sql's Store (PostgreSQL, MySQL/MariaDB), and every one passes
// package storetest's contract suite.
type Store interface {
	// Append appends events to stream, all or none, if the stream's current
	// version is expected ([Any]: whatever it is; [NoStream]: the stream has
	// no events). It returns the stream's new version, and sets StreamID,
	// Version, Position, RecordedAt (and an empty ID) of each element of
	// events, which get the versions after the current one, in order.
	//
	// If the version is not expected, nothing is appended and the error is a
	// *[ConflictError] (errors.As; errors.Is [ErrConflict]). Of concurrent
	// appends to one stream with the same expected version, one succeeds and
	// the others get a ConflictError. Invalid arguments (see [CheckAppend])
	// are errors before anything is stored.
	Append(ctx context.Context, stream string, expected int64, events []Event) (int64, error)

	// ReadStream returns the events of stream from version from (1 or less:
	// from the first) in version order, bounded by opts. A stream without
	// events, or without events in range, reads as no events and no error.
	ReadStream(ctx context.Context, stream string, from int64, opts ReadOptions) ([]Event, error)

	// ReadAll returns up to limit (≥ 1) events that come after position
	// after in the global order ([Start]: from the beginning), in that
	// order. A reader that goes on from the Position of the last event it
	// got sees every event exactly once, and never an event of an append
	// that did not commit: no event can later appear before a position
	// ReadAll has returned. Fewer than limit events, or none, means the
	// reader has caught up for now. An event becomes readable once its
	// append has committed and (on PostgreSQL) every transaction that might
	// still precede it has ended.
	//
	// The events of one stream come in version order, and the events of an
	// append that committed before the transaction of another append began
	// come before that append's events.
	ReadAll(ctx context.Context, after Position, limit int) ([]Event, error)
}

// TxAppender is implemented by stores kept in an SQL database (package
// sql's Store): they append inside the caller's transaction, so that the
// events are stored if and only if it commits, together with whatever else
// it writes (the transactional outbox, a read model, a dedup mark).
type TxAppender interface {
	// AppendTx is [Store.Append] run inside tx, which must be on the
	// store's database. On a ConflictError nothing of events was written
	// and tx can still be used (or rolled back); on any other error roll tx
	// back. The versions, positions and times set on events mean nothing
	// if tx rolls back. Until tx ends, other appends to the stream wait for
	// it (on MySQL every append of the store does), and on PostgreSQL
	// ReadAll readers do not pass it: keep such transactions short.
	AppendTx(ctx context.Context, tx *sql.Tx, stream string, expected int64, events []Event) (int64, error)
}

// ReadOptions bound a [Store.ReadStream]. The zero value reads to the end
// of the stream.
type ReadOptions struct {
	// To is the last version to read; 0 reads to the last event. With To,
	// a stream reads as it was at that version.
	To int64
	// Until, when not zero, reads the stream as it was at that time: the
	// events recorded at or before Until, stopping at the first one
	// recorded after it (so the result is always a prefix of the stream,
	// even if the store's clock went back).
	Until time.Time
	// Limit is the most events returned; 0 returns all of them.
	Limit int
}

// ErrConflict is matched by errors.Is for every *[ConflictError].
var ErrConflict = errors.New("eventstore: version conflict")

// ConflictError is the error of an append whose expected version was not
// the stream's. Nothing of that append was stored. A command handler
// typically loads the stream again and retries.
type ConflictError struct {
	// Stream is the stream appended to.
	Stream string
	// Expected is the expected version the append was made with.
	Expected int64
	// Actual is the stream's version when the append was refused (0: the
	// stream has no events), or -1 when the store could not tell.
	Actual int64
}

// Error says which stream, and the expected and the actual version.
func (e *ConflictError) Error() string {
	b := []byte("eventstore: stream ")
	b = strconv.AppendQuote(b, e.Stream)
	b = append(b, ": expected "...)
	b = appendVersion(b, e.Expected)
	b = append(b, ", actual "...)
	if e.Actual < 0 {
		b = append(b, "unknown"...)
	} else {
		b = appendVersion(b, e.Actual)
	}
	return string(b)
}

// Is makes errors.Is(err, ErrConflict) true for every ConflictError.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

func appendVersion(b []byte, v int64) []byte {
	switch {
	case v == NoStream:
		return append(b, "no stream"...)
	case v < 0:
		return append(b, "any version"...)
	}
	b = append(b, "version "...)
	return strconv.AppendInt(b, v, 10)
}
