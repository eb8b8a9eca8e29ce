package saga

import (
	"cmp"
	"context"
	"slices"
	"sync"
)

// MemoryStore keeps instances in memory, for tests and for the in-memory
// transport. Its saves and the messages they send are not atomic: it stores
// the instance, then publishes (in a handler, when the handler succeeds).
// Use package saga/sql in production.
type MemoryStore struct {
	mu   sync.Mutex
	byID map[[2]string]*Instance
}

// NewMemoryStore returns an empty [MemoryStore].
func NewMemoryStore() *MemoryStore { return &MemoryStore{byID: map[[2]string]*Instance{}} }

// Load returns a copy of the stored instance, or [ErrNotFound].
func (m *MemoryStore) Load(_ context.Context, saga, id string) (*Instance, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	in, ok := m.byID[[2]string{saga, id}]
	if !ok {
		return nil, ErrNotFound
	}
	return in.clone(), nil
}

// Save stores a copy of in if the stored version is expected (0: none
// stored), then calls publish with out.
func (m *MemoryStore) Save(ctx context.Context, in *Instance, expected int64, out []Outgoing, publish Publish) error {
	key := [2]string{in.Saga, in.ID}
	m.mu.Lock()
	cur, ok := m.byID[key]
	switch {
	case expected == 0 && ok:
		m.mu.Unlock()
		return ErrExists
	case expected > 0 && !ok:
		m.mu.Unlock()
		return ErrNotFound
	case expected > 0 && cur.Version != expected:
		m.mu.Unlock()
		return ErrConflict
	}
	m.byID[key] = in.clone()
	m.mu.Unlock()
	if len(out) == 0 || publish == nil {
		return nil
	}
	return publish(ctx, out)
}

// List returns copies of saga's instances in status ("" for all), oldest
// first, at most limit of them (0: all).
func (m *MemoryStore) List(_ context.Context, saga string, status Status, limit int) ([]*Instance, error) {
	m.mu.Lock()
	var out []*Instance
	for k, in := range m.byID {
		if k[0] == saga && (status == "" || in.Status == status) {
			out = append(out, in.clone())
		}
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b *Instance) int {
		return cmp.Or(a.Created.Compare(b.Created), cmp.Compare(a.ID, b.ID))
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}
