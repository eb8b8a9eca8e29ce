package eventstore

import (
	"bytes"
	"context"
	"maps"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
)

// Memory is a [Store] and [SnapshotStore] in memory, for tests and
// examples: safe for concurrent use, lost when the process ends. Appends
// are serialised, so positions are numbered in commit order in
// [Position.Seq] alone, from 1, without gaps. It keeps copies of what it is
// given and returns copies of what it keeps, so callers may change either.
type Memory struct {
	upcasters *Upcasters

	mu        sync.RWMutex
	all       []Event          // global order: the event at Seq n is all[n-1]
	streams   map[string][]int // indexes into all, by version-1
	snapshots map[snapshotKey]Snapshot
}

type snapshotKey struct {
	stream       string
	stateVersion int
}

var (
	_ Store         = (*Memory)(nil)
	_ SnapshotStore = (*Memory)(nil)
)

// MemoryOption configures a [Memory].
type MemoryOption func(*Memory)

// UpcastWith makes every read of the store return events upcast by u (see
// [Upcasters]).
func UpcastWith(u *Upcasters) MemoryOption {
	return func(m *Memory) { m.upcasters = u }
}

// NewMemory returns an empty store.
func NewMemory(opts ...MemoryOption) *Memory {
	m := &Memory{streams: make(map[string][]int), snapshots: make(map[snapshotKey]Snapshot)}
	for _, opt := range opts {
		opt(m)
	}
	return m
}

// Append implements [Store.Append].
func (m *Memory) Append(ctx context.Context, stream string, expected int64, events []Event) (int64, error) {
	if err := CheckAppend(stream, expected, events); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	current := int64(len(m.streams[stream]))
	if expected != Any && expected != current {
		return 0, &ConflictError{Stream: stream, Expected: expected, Actual: current}
	}
	now := time.Now().UTC()
	idx := m.streams[stream]
	for i := range events {
		e := &events[i]
		if e.ID == "" {
			e.ID = watermill.NewUUID()
		}
		e.StreamID = stream
		e.Version = current + int64(i) + 1
		e.Position = Position{Seq: int64(len(m.all)) + 1}
		e.RecordedAt = now
		idx = append(idx, len(m.all))
		m.all = append(m.all, clone(*e))
	}
	m.streams[stream] = idx
	return current + int64(len(events)), nil
}

// ReadStream implements [Store.ReadStream].
func (m *Memory) ReadStream(ctx context.Context, stream string, from int64, opts ReadOptions) ([]Event, error) {
	if err := CheckStream(stream); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	from = max(from, 1)
	m.mu.RLock()
	idx := m.streams[stream]
	var out []Event
	for v := from; v <= int64(len(idx)); v++ {
		if (opts.To > 0 && v > opts.To) || (opts.Limit > 0 && len(out) == opts.Limit) {
			break
		}
		e := m.all[idx[v-1]]
		if !opts.Until.IsZero() && e.RecordedAt.After(opts.Until) {
			break
		}
		out = append(out, clone(e))
	}
	m.mu.RUnlock()
	if err := m.upcasters.UpcastAll(out); err != nil {
		return nil, err
	}
	return out, nil
}

// ReadAll implements [Store.ReadAll]. Appends are serialised, so an event
// is readable as soon as its Append returned.
func (m *Memory) ReadAll(ctx context.Context, after Position, limit int) ([]Event, error) {
	if limit < 1 {
		return nil, invalid("read all: limit %d: want at least 1", limit)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if after.Tx != 0 {
		return nil, nil // after every event of this store, whose Tx is 0
	}
	m.mu.RLock()
	rest := m.all[min(max(after.Seq, 0), int64(len(m.all))):]
	rest = rest[:min(limit, len(rest))]
	out := make([]Event, len(rest))
	for i, e := range rest {
		out[i] = clone(e)
	}
	m.mu.RUnlock()
	if err := m.upcasters.UpcastAll(out); err != nil {
		return nil, err
	}
	return out, nil
}

// SaveSnapshot implements [SnapshotStore.SaveSnapshot].
func (m *Memory) SaveSnapshot(ctx context.Context, s Snapshot) error {
	if err := CheckSnapshot(s); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	k := snapshotKey{s.StreamID, s.StateVersion}
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.snapshots[k]; ok && old.Version > s.Version {
		return nil
	}
	s.Payload = bytes.Clone(s.Payload)
	s.TakenAt = time.Now().UTC()
	m.snapshots[k] = s
	return nil
}

// LoadSnapshot implements [SnapshotStore.LoadSnapshot].
func (m *Memory) LoadSnapshot(ctx context.Context, stream string, stateVersion int) (Snapshot, bool, error) {
	if err := CheckStream(stream); err != nil {
		return Snapshot{}, false, err
	}
	if err := ctx.Err(); err != nil {
		return Snapshot{}, false, err
	}
	m.mu.RLock()
	s, ok := m.snapshots[snapshotKey{stream, stateVersion}]
	m.mu.RUnlock()
	s.Payload = bytes.Clone(s.Payload)
	return s, ok, nil
}

// clone returns e with its own payload and metadata; empty ones become nil
// and empty, as the SQL stores return them.
func clone(e Event) Event {
	e.Payload = append([]byte{}, e.Payload...)
	if len(e.Metadata) == 0 {
		e.Metadata = nil
	} else {
		e.Metadata = maps.Clone(e.Metadata)
	}
	return e
}
