package memory

import (
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// record is one published message as the broker stores it: an immutable
// snapshot taken at Publish, shared by the topic's history and every group.
// Deliveries are built from it, so nothing a consumer does to its message
// reaches the record.
type record struct {
	seq      uint64 // position in the topic, from 1
	uuid     string
	payload  message.Payload
	metadata message.Metadata
	key      string // partition key; "" means none
}

// newMessage builds a fresh message for one delivery: same UUID, payload and
// metadata as the published one, its own ack state.
func (r *record) newMessage() *message.Message {
	m := message.NewMessage(r.uuid, r.payload)
	for k, v := range r.metadata {
		m.Metadata[k] = v
	}
	return m
}

// entryState says where a group's entry is.
type entryState uint8

const (
	stateReady    entryState = iota // in the group's ready queue
	stateWaiting                    // keyed, behind an earlier message of its key
	stateInFlight                   // taken by a subscription
	stateDelayed                    // nacked, its redelivery timer is pending
	stateDone                       // acked or dropped with its group
)

// entry is one message pending in one group. It lives until the group acks
// it.
type entry struct {
	rec   *record
	nacks int
	state entryState
	timer *time.Timer // set while stateDelayed
}

// entryHeap is a min-heap of entries ordered by publish sequence: the oldest
// available message is always at the top.
type entryHeap []*entry

func (h *entryHeap) len() int { return len(*h) }

func (h *entryHeap) push(e *entry) {
	s := append(*h, e)
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if s[p].rec.seq <= e.rec.seq {
			break
		}
		s[i] = s[p]
		i = p
	}
	s[i] = e
	*h = s
}

func (h *entryHeap) pop() *entry {
	s := *h
	top := s[0]
	n := len(s) - 1
	last := s[n]
	s[n] = nil
	s = s[:n]
	if n > 0 {
		i := 0
		for {
			c := 2*i + 1
			if c >= n {
				break
			}
			if r := c + 1; r < n && s[r].rec.seq < s[c].rec.seq {
				c = r
			}
			if last.rec.seq <= s[c].rec.seq {
				break
			}
			s[i] = s[c]
			i = c
		}
		s[i] = last
	}
	*h = s
	return top
}

// entryQueue is a FIFO of entries. As a key queue it holds one key's pending
// entries in publish order, and only its head may be ready, in flight or
// delayed; the rest wait.
type entryQueue struct {
	items []*entry
	head  int
}

func (q *entryQueue) len() int { return len(q.items) - q.head }

func (q *entryQueue) push(e *entry) { q.items = append(q.items, e) }

func (q *entryQueue) peek() *entry { return q.items[q.head] }

func (q *entryQueue) pop() *entry {
	e := q.items[q.head]
	q.items[q.head] = nil
	q.head++
	switch {
	case q.head == len(q.items):
		q.items, q.head = q.items[:0], 0
	case q.head >= 32 && q.head*2 >= len(q.items):
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	return e
}

// history is a ring of a topic's most recent records, at most limit of them.
type history struct {
	recs  []*record
	start int // index of the oldest record once the ring is full
	limit int
}

func (h *history) add(r *record) {
	switch {
	case h.limit == 0:
	case len(h.recs) < h.limit:
		h.recs = append(h.recs, r)
	default:
		h.recs[h.start] = r
		h.start++
		if h.start == h.limit {
			h.start = 0
		}
	}
}

// each calls fn with the retained records, oldest first.
func (h *history) each(fn func(*record)) {
	for i := range h.recs {
		j := h.start + i
		if j >= len(h.recs) {
			j -= len(h.recs)
		}
		fn(h.recs[j])
	}
}

// readyQueue holds a group's ready entries and yields the oldest first.
// Fresh messages become ready in publish order, so they queue in a FIFO;
// only entries that come back (requeued, redelivered, or unblocked when the
// previous message of their key was acked) pay for the heap.
type readyQueue struct {
	fresh entryQueue // increasing sequence numbers
	late  entryHeap
}

func (q *readyQueue) len() int { return q.fresh.len() + q.late.len() }

// pushFresh adds e, which must be newer than every entry pushed fresh before.
func (q *readyQueue) pushFresh(e *entry) { q.fresh.push(e) }

// pushLate adds e, of any age.
func (q *readyQueue) pushLate(e *entry) { q.late.push(e) }

// pop removes and returns the oldest entry; q must not be empty.
func (q *readyQueue) pop() *entry {
	switch {
	case q.late.len() == 0:
		return q.fresh.pop()
	case q.fresh.len() == 0 || q.late[0].rec.seq < q.fresh.peek().rec.seq:
		return q.late.pop()
	default:
		return q.fresh.pop()
	}
}
