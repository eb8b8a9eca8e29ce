package middleware

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Timeout puts a deadline of d on the handler's context for each attempt.
// Unlike Watermill's Timeout it restores the message's original context
// afterwards, so an attempt retried by outer middleware gets a fresh
// deadline instead of an expired one. d <= 0 returns h unchanged.
//
// The deadline costs almost nothing until the handler waits on it: the
// timer behind Done is started on the first call to Done (every blocking
// call that honours the context makes one), while Deadline and Err answer
// from the deadline itself. A quick handler that never blocks so pays no
// timer, which was a third of the default stack's per-message cost.
func Timeout(d time.Duration) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		if d <= 0 {
			return h
		}
		return func(msg *message.Message) ([]*message.Message, error) {
			orig := msg.Context()
			ctx := &deadlineCtx{Context: orig, deadline: time.Now().Add(d)}
			msg.SetContext(ctx)
			defer func() {
				ctx.stop()
				msg.SetContext(orig)
			}()
			return h(msg)
		}
	}
}

// deadlineCtx is a context with a deadline whose timer is made lazily: the
// real context.WithDeadline is created on the first call to Done.
type deadlineCtx struct {
	context.Context // the parent: values, and its own cancellation
	deadline        time.Time
	real            atomic.Pointer[timed]
}

type timed struct {
	ctx    context.Context
	cancel context.CancelFunc
}

func (c *deadlineCtx) Deadline() (time.Time, bool) {
	if p, ok := c.Context.Deadline(); ok && p.Before(c.deadline) {
		return p, true
	}
	return c.deadline, true
}

func (c *deadlineCtx) Done() <-chan struct{} { return c.timed().ctx.Done() }

func (c *deadlineCtx) Err() error {
	if t := c.real.Load(); t != nil {
		return t.ctx.Err()
	}
	if err := c.Context.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// Value answers from the real context once it exists, so that contexts
// derived from this one (which call Done first) hook onto its cancellation
// directly rather than through a goroutine.
func (c *deadlineCtx) Value(key any) any {
	if t := c.real.Load(); t != nil {
		return t.ctx.Value(key)
	}
	return c.Context.Value(key)
}

func (c *deadlineCtx) timed() *timed {
	if t := c.real.Load(); t != nil {
		return t
	}
	ctx, cancel := context.WithDeadline(c.Context, c.deadline)
	t := &timed{ctx: ctx, cancel: cancel}
	if c.real.CompareAndSwap(nil, t) {
		return t
	}
	cancel() // another goroutine won the race
	return c.real.Load()
}

// stop releases the timer, if one was started.
func (c *deadlineCtx) stop() {
	if t := c.real.Load(); t != nil {
		t.cancel()
	}
}
