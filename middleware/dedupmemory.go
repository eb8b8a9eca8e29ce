package middleware

import (
	"context"
	"sync"
	"time"
)

// DefaultMemoryStoreKeys is the bound NewMemoryStore uses when given a
// maxKeys below 1.
const DefaultMemoryStoreKeys = 100_000

// MemoryStore is a DedupStore held in process memory, for tests, the
// in-memory transport and single-instance services that accept forgetting
// processed keys on restart. It is safe for concurrent use within one
// process; it cannot deduplicate across processes.
//
// Memory stays flat: the store holds at most maxKeys keys. When it is full,
// a new key evicts the least recently seen done key (a duplicate of an
// evicted key will run again) or a claim whose lease ran out. A claim whose
// lease has not run out is never evicted, because that would let a duplicate
// run concurrently; if more than maxKeys deliveries hold claims at once, the
// store grows past maxKeys by that many until they finish. Expired keys are
// dropped lazily, on access and a few at a time on every call, so the store
// starts no goroutine and needs no Close. Time is read with time.Now, so the
// store follows testing/synctest's fake clock.
//
// It is hand-written rather than built on
// github.com/hashicorp/golang-lru/v2/expirable because that cache starts a
// cleanup goroutine per cache that cannot be stopped (a leak under goleak),
// and a dedup store needs claim state (owner, lease) beside the done keys,
// with compare-and-set under one lock, which a plain cache does not offer.
type MemoryStore struct {
	mu      sync.Mutex
	maxKeys int
	keys    map[string]*memEntry
	// done holds done keys, most recently seen first: eviction takes from
	// the back.
	done memList
	// claims holds in-flight claims, oldest claim first.
	claims memList
	// deletes counts map deletions since keys was last rebuilt.
	deletes int
}

// NewMemoryStore returns an empty MemoryStore that holds at most maxKeys keys
// (DefaultMemoryStoreKeys if maxKeys < 1), except as MemoryStore describes.
func NewMemoryStore(maxKeys int) *MemoryStore {
	if maxKeys < 1 {
		maxKeys = DefaultMemoryStoreKeys
	}
	s := &MemoryStore{maxKeys: maxKeys, keys: make(map[string]*memEntry)}
	s.done.init()
	s.claims.init()
	return s
}

// memEntry is one key: an in-flight claim (owner set, expires is the end of
// its lease) or a done key (done set, expires is the end of its ttl). It
// sits in exactly one of the store's lists.
type memEntry struct {
	key, owner string
	done       bool
	expires    time.Time
	prev, next *memEntry
	list       *memList
}

// Claim implements DedupStore.
func (s *MemoryStore) Claim(_ context.Context, key, owner string, lease time.Duration) (ClaimResult, error) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneSome(now)
	e := s.keys[key]
	if e != nil {
		if now.Before(e.expires) {
			if e.done {
				s.done.moveToFront(e)
				return AlreadyDone, nil
			}
			return Busy, nil
		}
		e.list.remove(e) // expired: take it over in place
	} else {
		e = s.newEntry(key, now)
	}
	e.owner, e.done, e.expires = owner, false, now.Add(lease)
	s.claims.pushBack(e)
	return Claimed, nil
}

// Complete implements DedupStore. It marks key done unless another owner
// holds an unexpired claim on it or it is done already; owner's own claim
// counts even after its lease ran out, as long as nobody took over, since
// the handler did succeed.
func (s *MemoryStore) Complete(_ context.Context, key, owner string, ttl time.Duration) error {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.keys[key]
	if e != nil {
		if now.Before(e.expires) && (e.done || e.owner != owner) {
			return nil
		}
		e.list.remove(e)
	} else {
		e = s.newEntry(key, now)
	}
	e.owner, e.done, e.expires = "", true, now.Add(ttl)
	s.done.pushFront(e)
	return nil
}

// Release implements DedupStore. It drops key only if owner holds it.
func (s *MemoryStore) Release(_ context.Context, key, owner string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.keys[key]; e != nil && !e.done && e.owner == owner {
		s.drop(e)
	}
	return nil
}

// Len returns how many keys the store holds, counting done keys and claims,
// expired ones not yet dropped included.
func (s *MemoryStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.keys)
}

// newEntry adds an entry for key, in no list yet, making room first; it
// reuses an evicted entry when there is one.
func (s *MemoryStore) newEntry(key string, now time.Time) *memEntry {
	var reuse *memEntry
	for len(s.keys) >= s.maxKeys {
		var victim *memEntry
		if e := s.done.back(); e != nil {
			victim = e
		} else if e := s.claims.front(); e != nil && !now.Before(e.expires) {
			victim = e
		} else {
			break // only live claims: grow rather than break exclusion
		}
		s.drop(victim)
		reuse = victim
	}
	if reuse == nil {
		reuse = new(memEntry)
	}
	*reuse = memEntry{key: key}
	s.keys[key] = reuse
	return reuse
}

// pruneSome drops up to two expired entries from the back of each list, so
// expired keys do not pile up while the store is below its bound.
func (s *MemoryStore) pruneSome(now time.Time) {
	for range 2 {
		if e := s.done.back(); e != nil && !now.Before(e.expires) {
			s.drop(e)
		}
		if e := s.claims.front(); e != nil && !now.Before(e.expires) {
			s.drop(e)
		}
	}
}

func (s *MemoryStore) drop(e *memEntry) {
	e.list.remove(e)
	delete(s.keys, e.key)
	s.deletes++
	if s.deletes >= s.maxKeys && s.deletes >= 1024 {
		s.rebuild()
	}
}

// rebuild copies keys into a fresh map. Under steady insert-and-evict churn,
// deleted slots pile up in a Go map and lookups of new keys probe through
// them (measured: a lookup ten times slower); copying once per maxKeys
// deletions costs O(1) per deletion and keeps lookups short.
func (s *MemoryStore) rebuild() {
	keys := make(map[string]*memEntry, len(s.keys))
	for k, e := range s.keys {
		keys[k] = e
	}
	s.keys = keys
	s.deletes = 0
}

// memList is an intrusive doubly linked ring with a sentinel, so moving an
// entry between lists allocates nothing.
type memList struct {
	root memEntry
}

func (l *memList) init() {
	l.root.next, l.root.prev = &l.root, &l.root
}

func (l *memList) front() *memEntry {
	if l.root.next == &l.root {
		return nil
	}
	return l.root.next
}

func (l *memList) back() *memEntry {
	if l.root.prev == &l.root {
		return nil
	}
	return l.root.prev
}

func (l *memList) insertAfter(e, at *memEntry) {
	e.prev, e.next = at, at.next
	at.next.prev = e
	at.next = e
	e.list = l
}

func (l *memList) pushFront(e *memEntry) { l.insertAfter(e, &l.root) }
func (l *memList) pushBack(e *memEntry)  { l.insertAfter(e, l.root.prev) }

func (l *memList) remove(e *memEntry) {
	e.prev.next = e.next
	e.next.prev = e.prev
	e.prev, e.next, e.list = nil, nil, nil
}

func (l *memList) moveToFront(e *memEntry) {
	if l.root.next == e {
		return
	}
	l.remove(e)
	l.pushFront(e)
}
