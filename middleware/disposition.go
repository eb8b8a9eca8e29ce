package middleware

import "context"

// Disposition is how a middleware settled a message other than by the
// handler's success: an ack that the handler did not earn. Observers
// (the App's metrics) report it as the message's outcome.
type Disposition int

const (
	// Unsettled: no middleware settled the message; its fate is the
	// handler's.
	Unsettled Disposition = iota
	// Poisoned: the message was sent to the poison queue ([PoisonQueue]).
	Poisoned
	// Delayed: the message was scheduled for a delayed retry
	// ([DelayedRetry]).
	Delayed
	// Duplicate: the message's key was done already ([Dedup]).
	Duplicate
)

// String returns the disposition's name: "poisoned", "delayed",
// "duplicate", or "" for [Unsettled].
func (d Disposition) String() string {
	switch d {
	case Poisoned:
		return "poisoned"
	case Delayed:
		return "delayed"
	case Duplicate:
		return "duplicate"
	}
	return ""
}

// DispositionKey is the context key of a message's disposition slot. A
// message context that answers Value(DispositionKey{}) with a *Disposition
// (the App's do) learns how the middleware settled the message, at no
// allocation; on other contexts the middleware records nothing.
type DispositionKey struct{}

// settle records d in ctx's disposition slot, if it has one.
func settle(ctx context.Context, d Disposition) {
	if p, ok := ctx.Value(DispositionKey{}).(*Disposition); ok {
		*p = d
	}
}
