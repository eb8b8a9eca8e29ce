package framework

import (
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/middleware"
)

// Observer is told about every message a handler finished with, after the
// message was acked or nacked. The test harness records through it; metrics
// and tracing can too. It is called on the consuming goroutine, so it must be
// quick and safe for concurrent use.
type Observer interface {
	MessageHandled(Outcome)
}

// Outcome is what became of one delivery of one message.
type Outcome struct {
	// Handler is the handler's name, Topic and Group where it consumes.
	Handler, Topic, Group string
	// Message is the delivered message. Observers must not modify it.
	Message *message.Message
	// Err is nil if the message was acked, else why it was nacked.
	Err error
	// Handled reports whether the handler function itself succeeded in this
	// delivery. A message can be acked without it: sent to the poison
	// queue, scheduled for a delayed retry, or skipped as a duplicate.
	Handled bool
	// Skipped reports a message of a type the handler does not take (see
	// [MessageTypes]): acked at once, without middleware or handler.
	Skipped bool
	// Disposition is how a middleware settled the message, if one did:
	// poisoned, scheduled for a delayed retry, or a duplicate.
	Disposition middleware.Disposition
	// HeldBack reports a nack that is not a failure: an open breaker, a
	// duplicate in flight, an unreachable dedup store, shutdown
	// ([middleware.HeldBack]).
	HeldBack bool
	// Duration is how long the handler and its middleware took.
	Duration time.Duration
}

// Result names the outcome as metrics label it: [ResultSuccess],
// [ResultRetried], [ResultDelayed], [ResultPoisoned], [ResultDuplicate],
// [ResultHeldBack] or [ResultSkipped].
func (o Outcome) Result() string { return results[o.result()] }

// result is the index of o's result in results.
func (o Outcome) result() int {
	switch {
	case o.Skipped:
		return resultSkipped
	case o.Err != nil && o.HeldBack:
		return resultHeldBack
	case o.Err != nil:
		return resultRetried
	case o.Disposition == middleware.Poisoned:
		return resultPoisoned
	case o.Disposition == middleware.Delayed:
		return resultDelayed
	case o.Disposition == middleware.Duplicate:
		return resultDuplicate
	}
	return resultSuccess // the handler succeeded, or a middleware of the user's acked it
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(Outcome)

// MessageHandled calls f(o).
func (f ObserverFunc) MessageHandled(o Outcome) { f(o) }
