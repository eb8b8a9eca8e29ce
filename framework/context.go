package framework

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/middleware"
)

// handling is the context of one message being handled. It is the message's
// context as the App hands it to the middleware stack: values come from the
// message's own context (what the subscriber put there) and then from the
// App; cancellation comes from the App alone, which cancels handler contexts
// only when the shutdown drain timeout has passed. A transport that cancels
// a message's context when its subscription closes therefore cannot cut a
// handler short during a graceful shutdown.
type handling struct {
	base    context.Context // App's handler context: Done, Err, Deadline
	values  context.Context // the message's context from the subscriber
	msg     *message.Message
	handler *handler
	mu      sync.Mutex             // guards pending and after: handlers may publish from goroutines
	pending []outgoing             // what the handler published or returned, sent when it succeeds
	after   afterState             // whether the handler's publishes were sent or dropped already
	handled bool                   // the handler function succeeded (and what it published was sent)
	claim   middleware.Claim       // the dedup claim's slot (middleware.ClaimKey)
	settled middleware.Disposition // how middleware settled it (middleware.DispositionKey)
}

// afterState says what becomes of a publish on a handler's context.
type afterState int

const (
	collecting    afterState = iota // held until the handler succeeds
	sentAlready                     // the handler succeeded and its output went: publish at once
	failedAlready                   // the handler failed: refuse
)

// hold holds msgs (for topic) until the handler's output is sent, and reports true;
// once it was sent it reports false (publish msgs at once), and once the
// handling failed it returns an error.
func (hd *handling) hold(topic string, msgs []*message.Message) (bool, error) {
	hd.mu.Lock()
	defer hd.mu.Unlock()
	switch hd.after {
	case sentAlready:
		return false, nil
	case failedAlready:
		return false, ErrHandlingFailed
	}
	for _, msg := range msgs {
		hd.pending = append(hd.pending, outgoing{topic: topic, msg: msg})
	}
	return true, nil
}

// take returns what is pending and empties it; with sent, publishes from
// now on go at once (the caller sends what it took).
func (hd *handling) take(sent bool) []outgoing {
	hd.mu.Lock()
	defer hd.mu.Unlock()
	p := hd.pending
	hd.pending = nil
	if sent {
		hd.after = sentAlready
	}
	return p
}

// reset drops what is pending and collects again (a new attempt, or a
// send that failed).
func (hd *handling) reset() {
	hd.mu.Lock()
	hd.pending = nil
	hd.after = collecting
	hd.mu.Unlock()
}

// finish records that the handling is over: unless the handler's output
// was sent, publishes from now on are refused (the handler failed, or
// middleware settled the message without it, such as by poisoning it).
func (hd *handling) finish() {
	hd.mu.Lock()
	hd.pending = nil
	if hd.after != sentAlready {
		hd.after = failedAlready
	}
	hd.mu.Unlock()
}

// outgoing is a message waiting to be published to topic.
type outgoing struct {
	topic string
	msg   *message.Message
}

type handlingKey struct{}

func (hd *handling) Deadline() (time.Time, bool) { return hd.base.Deadline() }
func (hd *handling) Done() <-chan struct{}       { return hd.base.Done() }
func (hd *handling) Err() error                  { return hd.base.Err() }

// Value looks in the App's context first: it holds only millrace's own keys
// and the cancellation of handler contexts, so contexts derived from a
// handling context (a per-attempt timeout, say) find that cancellation and
// hook onto it directly instead of starting a goroutine per derived context.
// Every other key falls through to the message's own context.
func (hd *handling) Value(key any) any {
	switch key {
	case handlingKey{}:
		return hd
	case middleware.ClaimKey{}:
		return &hd.claim
	case middleware.DispositionKey{}:
		return &hd.settled
	}
	if v := hd.base.Value(key); v != nil {
		return v
	}
	return hd.values.Value(key)
}

// handlingFrom returns the message being handled in ctx, or nil outside a
// handler.
func handlingFrom(ctx context.Context) *handling {
	hd, _ := ctx.Value(handlingKey{}).(*handling)
	return hd
}

// Message returns the message being handled in ctx, or nil if ctx is not a
// handler's context. Handlers registered with [Handle] receive the decoded
// payload; this gives them the metadata too.
func Message(ctx context.Context) *message.Message {
	if hd := handlingFrom(ctx); hd != nil {
		return hd.msg
	}
	return nil
}

// HandlerName returns the name of the handler running in ctx, or "".
func HandlerName(ctx context.Context) string {
	if hd := handlingFrom(ctx); hd != nil {
		return hd.handler.name
	}
	return ""
}

// Logger returns the App's logger (which carries the service name) with the
// handler's name and the message's id attached, for a handler's own log
// lines. Outside a handler's context it returns slog.Default(); use
// [App.Logger] there.
func Logger(ctx context.Context) *slog.Logger {
	hd := handlingFrom(ctx)
	if hd == nil {
		return slog.Default()
	}
	return hd.handler.app.logger.With(hd.attrs()...)
}

// attrs are the attributes every log line about this message carries.
func (hd *handling) attrs() []any {
	return []any{
		slog.String("handler", hd.handler.name),
		slog.String("message_id", hd.msg.UUID),
	}
}
