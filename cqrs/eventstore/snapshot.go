package eventstore

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/millrace/millrace"
)

// Snapshot is a stream's state as of one of its versions, so that loading
// the stream reads only the events after it. A snapshot is a cache: a
// stream can always be rebuilt from its events without it.
type Snapshot struct {
	// StreamID is the stream whose state this is.
	StreamID string
	// Version is the stream version the state is as of: the events up to
	// and including it are in the state.
	Version int64
	// StateVersion is the version of the state's schema, chosen by the code
	// that builds the state. Change it whenever the encoded state changes
	// shape: [SnapshotStore.LoadSnapshot] finds only snapshots of the state
	// version asked for, so a snapshot of an older shape is ignored (the
	// stream is read from its events) instead of being decoded wrongly.
	StateVersion int
	// Type names the state (the aggregate type, as [framework.TypeName]
	// names it).
	Type string
	// ContentType is the payload's media type.
	ContentType string
	// Payload is the encoded state.
	Payload []byte
	// TakenAt is when the store saved the snapshot, on its clock; set by
	// SaveSnapshot.
	TakenAt time.Time
}

// SnapshotStore keeps one snapshot per stream and state version, beside
// the streams: [Memory] in memory, package sql's Store in a table next to
// the events.
type SnapshotStore interface {
	// SaveSnapshot stores s as the snapshot of s.StreamID for
	// s.StateVersion, replacing one of an older or the same stream
	// version; a snapshot already stored for a later stream version stays
	// (a slow writer cannot take the snapshot back). Snapshots of other
	// state versions are kept, so instances of two releases can run side
	// by side during a deployment.
	SaveSnapshot(ctx context.Context, s Snapshot) error

	// LoadSnapshot returns the snapshot of stream for state version
	// stateVersion, and false if there is none (then read the stream from
	// its first event).
	LoadSnapshot(ctx context.Context, stream string, stateVersion int) (Snapshot, bool, error)
}

// SnapshotPolicy says how often the state of an aggregate is snapshotted:
// every N events, N configurable per aggregate type. The aggregate layer
// asks [SnapshotPolicy.Due] after each append.
type SnapshotPolicy struct {
	// Every is N for aggregate types not in PerType; 0 takes no snapshots.
	Every int `yaml:"every"`
	// PerType overrides Every for the aggregate types it names (0: none for
	// that type).
	PerType map[string]int `yaml:"per_type"`
}

// EveryFor returns N for aggregateType: its PerType entry, else Every.
func (p SnapshotPolicy) EveryFor(aggregateType string) int {
	if n, ok := p.PerType[aggregateType]; ok {
		return n
	}
	return p.Every
}

// Due reports whether an append that took a stream of aggregateType from
// version from to version to should be followed by a snapshot at to: it
// reached or crossed a multiple of N. A batch of events that crosses
// several multiples asks for one snapshot.
func (p SnapshotPolicy) Due(aggregateType string, from, to int64) bool {
	n := int64(p.EveryFor(aggregateType))
	if n <= 0 || to <= from {
		return false
	}
	return to/n > from/n
}

// Validate reports negative values, one [millrace.ConfigError] per key
// ("every", "per_type.<type>"), joined.
func (p SnapshotPolicy) Validate() error {
	var errs []error
	if p.Every < 0 {
		errs = append(errs, &millrace.ConfigError{Key: "every", Value: strconv.Itoa(p.Every), Problem: "must be 0 (no snapshots) or a positive number of events"})
	}
	for _, t := range slices.Sorted(maps.Keys(p.PerType)) {
		if n := p.PerType[t]; n < 0 {
			errs = append(errs, &millrace.ConfigError{Key: "per_type." + t, Value: strconv.Itoa(n), Problem: "must be 0 (no snapshots) or a positive number of events"})
		}
	}
	return millrace.JoinConfigErrors(errs)
}
