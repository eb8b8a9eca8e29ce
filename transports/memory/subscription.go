package memory

import (
	"context"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// subscription is one consumer of a group: a goroutine that takes the
// group's messages one at a time, offers each on out and waits for the
// consumer to ack or nack it.
type subscription struct {
	owner  *Subscriber
	t      *topic
	g      *group
	ctx    context.Context // the Subscribe context: done means stop delivering
	msgCtx context.Context // ctx's values without its cancellation, parent of message contexts

	out       chan *message.Message
	outClosed bool
	assigned  chan *entry // capacity 1; the group sends here while s is idle
}

// settlement is how the consumer resolved a delivery.
type settlement uint8

const (
	unsettled settlement = iota
	acked
	nacked
)

func (s *subscription) run() {
	defer s.owner.running.Done()
	defer s.t.leave(s.g)
	defer s.closeOut()
	defer s.owner.b.logger.Debug("memory: subscription ended", s.logFields())

	var e *entry
	how := unsettled
	for {
		if e = s.next(e, how); e == nil {
			return
		}
		if how = s.offer(e); how == unsettled {
			return
		}
	}
}

// next settles the previous delivery (if any) and returns the next entry to
// offer, waiting for one if none is ready; nil means stop.
func (s *subscription) next(prev *entry, how settlement) *entry {
	t, g := s.t, s.g
	t.mu.Lock()
	switch how {
	case acked:
		g.ack(prev)
	case nacked:
		g.nack(prev)
	}
	if s.stopping() {
		t.mu.Unlock()
		return nil
	}
	if e := g.take(); e != nil {
		t.mu.Unlock()
		return e
	}
	g.wait(s)
	t.mu.Unlock()

	select {
	case e := <-s.assigned:
		return e
	case <-s.ctx.Done():
	case <-s.owner.closing:
	}
	t.mu.Lock()
	if !g.stopWaiting(s) {
		// Dispatched to s meanwhile (under this mutex, so it is buffered).
		select {
		case e := <-s.assigned:
			g.requeue(e)
		default:
		}
	}
	t.mu.Unlock()
	return nil
}

// stopping reports whether the subscription's context is done or its
// Subscriber closed.
func (s *subscription) stopping() bool {
	select {
	case <-s.ctx.Done():
		return true
	case <-s.owner.closing:
		return true
	default:
		return false
	}
}

// offer hands e to the consumer and waits until it is acked or nacked.
// It returns unsettled if the subscription must stop; e is then back in its
// group.
func (s *subscription) offer(e *entry) settlement {
	m := e.rec.newMessage()
	ctx, cancel := context.WithCancel(s.msgCtx)
	defer cancel()
	m.SetContext(ctx)

	select {
	case s.out <- m:
	case <-s.ctx.Done():
		s.requeue(e)
		return unsettled
	case <-s.owner.closing:
		s.requeue(e)
		return unsettled
	}

	done := s.ctx.Done()
	for {
		select {
		case <-m.Acked():
			return acked
		case <-m.Nacked():
			return nacked
		case <-done:
			// Stop delivering, but keep honouring this message's ack.
			s.closeOut()
			done = nil
		case <-s.owner.closing:
			select {
			case <-m.Acked():
				return acked
			case <-m.Nacked():
				return nacked
			default:
			}
			s.requeue(e)
			return unsettled
		}
	}
}

func (s *subscription) requeue(e *entry) {
	s.t.mu.Lock()
	s.g.requeue(e)
	s.t.mu.Unlock()
}

func (s *subscription) closeOut() {
	if !s.outClosed {
		s.outClosed = true
		close(s.out)
	}
}

func (s *subscription) logFields() watermill.LogFields {
	return watermill.LogFields{"topic": s.t.name, "consumer_group": s.g.name}
}
