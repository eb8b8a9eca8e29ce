package sql

import (
	"context"
	"sync"
)

// notifier tells followers on PostgreSQL that events were committed: a
// NOTIFY on the store's channel ([Store.NotifyChannel]) after appends
// commit. A NOTIFY inside the appending transaction would make concurrent
// appends commit one at a time (PostgreSQL serialises the commits of
// notifying transactions), so Append signals the notifier once its
// transaction has committed, and the notifier sends one NOTIFY, in a
// statement of its own, for every signal that came while it was not
// sending: the appends of a burst share a notification, and none waits
// for it. AppendTx, whose transaction the caller commits, notifies inside
// it: its cost is the caller's transaction's.
type notifier struct {
	mu      sync.Mutex
	sending bool // a goroutine is sending
	again   bool // a signal came while it was
}

// signal asks for a notification after what has committed so far.
func (n *notifier) signal(s *Store) {
	n.mu.Lock()
	if n.sending {
		n.again = true
		n.mu.Unlock()
		return
	}
	n.sending = true
	n.mu.Unlock()
	go n.send(s)
}

func (n *notifier) send(s *Store) {
	for {
		c := s.start(context.Background())
		// A lost notification costs followers a poll interval; nothing to
		// report it to.
		_, _ = s.db.ExecContext(c.ctx, "SELECT pg_notify($1, '')", s.NotifyChannel())
		c.cancel()
		n.mu.Lock()
		if !n.again {
			n.sending = false
			n.mu.Unlock()
			return
		}
		n.again = false
		n.mu.Unlock()
	}
}
