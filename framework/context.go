package framework

import (
	"context"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// delivery is the context of one message being handled. It is the message's
// context as the App hands it to the middleware stack: values come from the
// message's own context (what the subscriber put there) and then from the
// App; cancellation comes from the App alone, which cancels handler contexts
// only when the shutdown drain timeout has passed. A transport that cancels
// a message's context when its subscription closes therefore cannot cut a
// handler short during a graceful shutdown.
type delivery struct {
	base    context.Context // App's handler context: Done, Err, Deadline
	values  context.Context // the message's context from the subscriber
	msg     *message.Message
	handler *handler
	outbox  []outgoing // messages published by the handler, sent on success
	handled bool       // the handler function succeeded (and its output was sent)
}

// outgoing is a message waiting to be published to topic.
type outgoing struct {
	topic string
	msg   *message.Message
}

type deliveryKey struct{}

func (d *delivery) Deadline() (time.Time, bool) { return d.base.Deadline() }
func (d *delivery) Done() <-chan struct{}       { return d.base.Done() }
func (d *delivery) Err() error                  { return d.base.Err() }

// Value looks in the App's context first: it holds only millrace's own keys
// and the cancellation of handler contexts, so contexts derived from a
// delivery (a per-attempt timeout, say) find that cancellation and hook onto
// it directly instead of starting a goroutine per derived context. Every
// other key falls through to the message's own context.
func (d *delivery) Value(key any) any {
	if key == (deliveryKey{}) {
		return d
	}
	if v := d.base.Value(key); v != nil {
		return v
	}
	return d.values.Value(key)
}

func deliveryFrom(ctx context.Context) *delivery {
	d, _ := ctx.Value(deliveryKey{}).(*delivery)
	return d
}

// Message returns the message being handled in ctx, or nil if ctx is not a
// handler's context. Handlers registered with Handle receive the decoded
// payload; this gives them the metadata too.
func Message(ctx context.Context) *message.Message {
	if d := deliveryFrom(ctx); d != nil {
		return d.msg
	}
	return nil
}

// HandlerName returns the name of the handler running in ctx, or "".
func HandlerName(ctx context.Context) string {
	if d := deliveryFrom(ctx); d != nil {
		return d.handler.name
	}
	return ""
}

// Logger returns the App's logger (which carries the service name) with the
// handler's name and the message's id attached, for a handler's own log
// lines. Outside a handler's context it returns slog.Default(); use
// App.Logger there.
func Logger(ctx context.Context) *slog.Logger {
	d := deliveryFrom(ctx)
	if d == nil {
		return slog.Default()
	}
	return d.handler.app.logger.With(d.attrs()...)
}

// attrs are the attributes every log line about this delivery carries.
func (d *delivery) attrs() []any {
	return []any{
		slog.String("handler", d.handler.name),
		slog.String("message_id", d.msg.UUID),
	}
}
