package memory

import (
	"context"
	"errors"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

var (
	errDelayNilMessage = errors.New("memory: delay: nil message")
	errDelayNegative   = errors.New("memory: delay: negative delay")
	errDelayAnonymous  = errors.New(`memory: delay: group "" is anonymous (one subscription's own) and cannot be addressed; name the group`)
)

// Delay makes a copy of msg (its UUID, a copy of its payload and metadata)
// pending in consumer group group of topic once delay has passed, and
// returns at once: nothing waits for the delay, and the group's other
// messages keep flowing meanwhile. Only that group receives the copy; the
// topic's other groups and its retained history do not. It implements
// millrace's middleware.Delayer, so a retry can wait without holding a
// consumer.
//
// The delay runs on the time package's clock (inside a testing/synctest
// bubble, the bubble's fake clock). A delay of 0 makes the copy pending at
// once. When the delay has passed the copy joins the group like a message
// published at that moment to that group alone: it is delivered after
// every message of the group pending then, and a keyed copy (metadata
// millrace.MetadataPartitionKey) is a new entry at the end of its key's
// order: it does not hold its key back while it waits, and messages of its
// key published before it became due are delivered before it.
//
// If the group does not exist on topic yet, Delay creates it, as its first
// Subscribe would (starting with the topic's retained messages), so the
// copy is not lost. Group "" is an error: anonymous groups belong to one
// subscription and cannot be addressed. The copy is in memory only: Close
// drops it with every other pending message.
//
// Delay returns an error for a negative delay or a nil msg, ctx's error if
// ctx is done, and one wrapping [transports.ErrClosed] after Close.
func (b *Broker) Delay(ctx context.Context, topic, group string, msg *message.Message, delay time.Duration) error {
	switch {
	case msg == nil:
		return errDelayNilMessage
	case delay < 0:
		return errDelayNegative
	case group == "":
		return errDelayAnonymous
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r, err := snapshot(msg)
	if err != nil {
		return err
	}
	t, err := b.topic(topic)
	if err != nil {
		return err
	}
	return t.delay(group, r, delay)
}

// delay makes r pending in group name after d, creating the group if it
// does not exist.
func (t *topic) delay(name string, r *record, d time.Duration) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return errClosed
	}
	g := t.group(name)
	if d == 0 {
		g.addLate(r)
		return nil
	}
	g.schedule(r, d)
	return nil
}

// scheduled is a message given to Delay whose delay has not passed yet. It
// is not an entry of its group until then.
type scheduled struct {
	rec   *record
	timer *time.Timer
}

// schedule adds r to the group when d has passed.
func (g *group) schedule(r *record, d time.Duration) {
	if g.scheduled == nil {
		g.scheduled = make(map[*scheduled]struct{})
	}
	s := &scheduled{rec: r}
	g.scheduled[s] = struct{}{}
	// The timer's function takes the topic's mutex, held here, so it cannot
	// run before s.timer is set.
	s.timer = time.AfterFunc(d, func() { g.release(s) })
}

// release adds a scheduled message to the group; it runs when its timer
// fires.
func (g *group) release(s *scheduled) {
	g.t.mu.Lock()
	defer g.t.mu.Unlock()
	if g.gone {
		return
	}
	if _, ok := g.scheduled[s]; !ok {
		return
	}
	delete(g.scheduled, s)
	s.timer = nil
	g.addLate(s.rec)
}

// addLate numbers r as the topic's newest message and makes it pending in
// this group only.
func (g *group) addLate(r *record) {
	g.t.seq++
	r.seq = g.t.seq
	g.add(r)
}
