package memory

import "time"

// maxSpareQueues bounds the key queues a group keeps for reuse.
const maxSpareQueues = 64

// group is one consumer group's view of one topic: the messages it has not
// acked yet and the subscriptions that share them. Every method must be
// called with the topic's mutex held.
//
// Invariants: an entry is in exactly one of the ready queue, a subscription
// (in flight), a redelivery timer (delayed) or, for a keyed entry that is not
// its key's oldest pending one, only its key queue (waiting). A keyed entry
// is always in its key's queue until acked, and only a queue's head can be
// ready, in flight or delayed. When idle is not empty the ready queue is
// empty. A message given to Delay is not an entry until its delay has
// passed: it waits in scheduled, outside every queue.
type group struct {
	t         *topic
	name      string
	anonymous bool // one subscription's private group (name "")

	ready   readyQueue
	keys    map[string]*entryQueue
	spare   []*entryQueue
	delayed map[*entry]struct{}

	scheduled map[*scheduled]struct{} // given to Delay, not yet due; nil until the first
	pending   int                     // entries not acked yet: the group's backlog

	idle    []*subscription // subscriptions waiting for a message, longest waiting first
	members int             // live subscriptions
	gone    bool            // dropped: its topic closed, or its anonymous subscription ended
}

// newGroup returns a group of t, with the retained history pending if seed.
func newGroup(t *topic, name string, anonymous, seed bool) *group {
	g := &group{
		t:         t,
		name:      name,
		anonymous: anonymous,
		keys:      make(map[string]*entryQueue),
		delayed:   make(map[*entry]struct{}),
	}
	if seed {
		t.hist.each(g.add)
	}
	return g
}

// add makes r pending in the group. r must be newer than every record added
// before (a fresh publish, or the history replayed in order).
func (g *group) add(r *record) {
	g.pending++
	e := &entry{rec: r}
	if r.key != "" {
		q := g.keys[r.key]
		if q != nil {
			e.state = stateWaiting
			q.push(e)
			return
		}
		if n := len(g.spare); n > 0 {
			q = g.spare[n-1]
			g.spare = g.spare[:n-1]
		} else {
			q = &entryQueue{}
		}
		q.push(e)
		g.keys[r.key] = q
	}
	e.state = stateReady
	g.ready.pushFresh(e)
	g.dispatch()
}

// makeReady puts e, an entry that comes back, among the ready ones in its
// original position and hands out what idle subscriptions can take.
func (g *group) makeReady(e *entry) {
	e.state = stateReady
	g.ready.pushLate(e)
	g.dispatch()
}

// dispatch hands the oldest ready entries to the longest waiting idle
// subscriptions. A subscription in idle has an empty assigned channel, so
// the send never blocks.
func (g *group) dispatch() {
	for len(g.idle) > 0 && g.ready.len() > 0 {
		s := g.idle[0]
		n := copy(g.idle, g.idle[1:])
		g.idle[n] = nil
		g.idle = g.idle[:n]
		e := g.ready.pop()
		e.state = stateInFlight
		s.assigned <- e
	}
}

// take returns the oldest ready entry, now in flight, or nil.
func (g *group) take() *entry {
	if g.ready.len() == 0 {
		return nil
	}
	e := g.ready.pop()
	e.state = stateInFlight
	return e
}

// wait registers s as idle: dispatch will send it the next ready entry.
func (g *group) wait(s *subscription) {
	g.idle = append(g.idle, s)
}

// stopWaiting removes s from idle and reports whether it was there; false
// means an entry was already sent to s.assigned.
func (g *group) stopWaiting(s *subscription) bool {
	for i, w := range g.idle {
		if w == s {
			n := copy(g.idle[i:], g.idle[i+1:])
			g.idle[i+n] = nil
			g.idle = g.idle[:i+n]
			return true
		}
	}
	return false
}

// ack forgets e for good and, if e held its key, lets the key's next
// message go.
func (g *group) ack(e *entry) {
	if g.gone {
		return
	}
	key := e.rec.key
	e.state = stateDone
	e.rec = nil
	g.pending--
	if key == "" {
		return
	}
	q := g.keys[key]
	q.pop()
	if q.len() > 0 {
		g.makeReady(q.peek())
		return
	}
	delete(g.keys, key)
	if len(g.spare) < maxSpareQueues {
		g.spare = append(g.spare, q)
	}
}

// nack schedules e for redelivery after the configured delay for its nack
// count. A keyed e keeps its key blocked until then.
func (g *group) nack(e *entry) {
	if g.gone {
		return
	}
	e.nacks++
	e.state = stateDelayed
	g.delayed[e] = struct{}{}
	e.timer = time.AfterFunc(g.t.cfg.redeliveryDelay(e.nacks), func() { g.redeliver(e) })
}

// redeliver makes a delayed entry ready again; it runs when its timer fires.
func (g *group) redeliver(e *entry) {
	g.t.mu.Lock()
	defer g.t.mu.Unlock()
	if g.gone || e.state != stateDelayed {
		return
	}
	delete(g.delayed, e)
	e.timer = nil
	g.makeReady(e)
}

// requeue puts an entry that was taken but not settled back, in its
// original position, available at once and with no nack counted.
func (g *group) requeue(e *entry) {
	if g.gone {
		return
	}
	g.makeReady(e)
}

// drop stops the group's timers and releases its messages.
func (g *group) drop() {
	g.gone = true
	for e := range g.delayed {
		e.timer.Stop()
		e.timer = nil
	}
	g.delayed = nil
	for s := range g.scheduled {
		s.timer.Stop()
	}
	g.scheduled = nil
	g.ready = readyQueue{}
	g.keys = nil
	g.spare = nil
	g.idle = nil
}
