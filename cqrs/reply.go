package cqrs

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/framework"
)

// RemoteError is the error a request's handler returned, as its caller
// receives it: [Request] and remote [Query] return it.
type RemoteError struct {
	// Request is the type name of the request (command or query).
	Request string
	// Message is the handler's error text.
	Message string
}

// Error says which request failed, and why.
func (e *RemoteError) Error() string {
	return fmt.Sprintf("%s failed in its handler: %s", e.Request, e.Message)
}

// HandleCommandWithReply registers fn as the one handler of commands of
// type C, as [HandleCommand] does, and answers each command sent with
// [Request] with what fn returns: R, or fn's error, which the caller
// receives as a [*RemoteError]. To a request an error is an answer: the
// command is acked, not retried, and what fn published before failing is
// withdrawn. A command without a reply address (sent with [Send], through
// the outbox, or by a foreign client) gets no reply, and an error fails it
// as it does with [HandleCommand]: the middleware stack retries it, and
// poisons it once the attempts are used up.
func HandleCommandWithReply[C, R any](b *Bus, fn func(ctx context.Context, c C) (R, error), opts ...framework.HandlerOption) {
	in := infoOf[C](b)
	if !b.claim("command", in.name, caller()) {
		return
	}
	handleRequests(b, in, fn, opts)
}

// handleRequests registers the App handler that answers requests of in.
func handleRequests[Q, R any](b *Bus, in info, fn func(context.Context, Q) (R, error), opts []framework.HandlerOption) {
	replyName := Name[R]()
	framework.HandleRaw(b.app, in.name, in.topic, func(msg *message.Message) ([]*message.Message, error) {
		ctx := msg.Context()
		q, err := decode[Q](b.codecs, in.name, msg)
		if err != nil {
			// Nobody can handle it: the caller hears why at once, and the
			// request goes to the poison queue.
			if rerr := b.reply(framework.Immediate(ctx), msg, replyName, nil, err); rerr != nil {
				return nil, fmt.Errorf("%w (and replying failed: %v)", err, rerr)
			}
			return nil, err
		}
		r, herr := fn(ctx, q)
		if herr != nil && msg.Metadata.Get(millrace.MetadataReplyTo) == "" {
			return nil, herr // nobody to answer: retried like any command
		}
		if herr != nil {
			framework.Withdraw(ctx)
			framework.Logger(ctx).LogAttrs(ctx, slog.LevelInfo, "request handler failed; the error is its reply",
				slog.String("request", in.name), slog.Any("error", herr))
			return nil, b.reply(ctx, msg, replyName, nil, herr)
		}
		return nil, b.reply(ctx, msg, replyName, r, nil)
	}, pointToPoint(in, opts)...)
}

// reply publishes the answer to request req: v of type name, or herr.
// Requests sent without reply_to get none.
func (b *Bus) reply(ctx context.Context, req *message.Message, name string, v any, herr error) error {
	to := req.Metadata.Get(millrace.MetadataReplyTo)
	if to == "" {
		return nil
	}
	var msg *message.Message
	if herr != nil {
		msg = message.NewMessage(req.UUID+".reply", nil)
		msg.Metadata.Set(millrace.MetadataType, name)
		msg.Metadata.Set(millrace.MetadataReplyError, herr.Error())
	} else {
		var err error
		if msg, err = b.encode(name, v, nil); err != nil {
			return err
		}
		msg.UUID = req.UUID + ".reply"
	}
	msg.Metadata.Set(millrace.MetadataCausationID, req.UUID)
	msg.Metadata.Set(millrace.MetadataReplyInstance, req.Metadata.Get(millrace.MetadataReplyInstance))
	return b.app.PublishMessage(ctx, to, msg)
}

// Request sends command c to its handler (registered with
// [HandleCommandWithReply], in any service) and waits for the reply: R, or
// the handler's error as a [*RemoteError]. ctx and the bus's
// [RequestTimeout] bound the wait, whichever ends first (in a handler too,
// whose context has the longer middleware.timeout). Replies come back on one
// subscription per instance of the service, however many requests are in
// flight, and are matched to their request by its id (their causation_id);
// a reply that comes after its caller gave up is dropped and counted
// ([Stats.LateReplies]). Called in a handler, the command is sent at once.
func Request[R, C any](ctx context.Context, b *Bus, c C, opts ...framework.PublishOption) (R, error) {
	return request[R](ctx, b, infoOf[C](b), c, opts)
}

func request[R any](ctx context.Context, b *Bus, in info, v any, opts []framework.PublishOption) (R, error) {
	var zero R
	msg, err := b.encode(in.name, v, opts)
	if err != nil {
		return zero, err
	}
	msg.Metadata.Set(millrace.MetadataReplyTo, b.replyTo)
	msg.Metadata.Set(millrace.MetadataReplyInstance, b.app.InstanceID())
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > b.timeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, b.timeout, fmt.Errorf("cqrs: no reply within %s (cqrs.RequestTimeout)", b.timeout))
		defer cancel()
	}
	if err := b.prepare(ctx, in); err != nil {
		return zero, err
	}
	ch := b.replies.expect(msg.UUID)
	defer b.replies.forget(msg.UUID)
	if err := b.app.PublishMessage(framework.Immediate(ctx), in.topic, msg); err != nil {
		return zero, fmt.Errorf("cqrs: request %s: %w", in.name, err)
	}
	select {
	case r := <-ch:
		if e := r.Metadata.Get(millrace.MetadataReplyError); e != "" {
			return zero, &RemoteError{Request: in.name, Message: e}
		}
		return decode[R](b.codecs, Name[R](), r)
	case <-ctx.Done():
		return zero, fmt.Errorf("cqrs: request %s (message %s): no reply: %w", in.name, msg.UUID, context.Cause(ctx))
	}
}

// handleReplies registers the App handler of this instance's replies: one
// subscription of its own on the reply topic ([framework.Ephemeral]), with
// no middleware, that hands each reply to the request waiting for it.
func (b *Bus) handleReplies() {
	framework.HandleRaw(b.app, "cqrs.replies", b.replyTo, func(msg *message.Message) ([]*message.Message, error) {
		if msg.Metadata.Get(millrace.MetadataReplyInstance) != b.app.InstanceID() {
			b.stats.foreign.Add(1)
			return nil, nil
		}
		if !b.replies.deliver(msg.Metadata.Get(millrace.MetadataCausationID), msg) {
			b.stats.late.Add(1)
			framework.Logger(msg.Context()).Debug("reply after its caller gave up: dropped",
				slog.String("request_id", msg.Metadata.Get(millrace.MetadataCausationID)))
		}
		return nil, nil
	}, framework.Ephemeral(), framework.WithMiddleware(func(m *framework.MiddlewareConfig) {
		m.Retry.MaxAttempts = 1
		m.DelayedRetry.Enabled = false
		m.Poison.Enabled = false
		m.Breaker.Enabled = false
		m.Dedup.Enabled = false
		m.Throttle.Rate = 0
	}))
}

// pendingReplies are the requests of this instance waiting for replies.
type pendingReplies struct {
	mu      sync.Mutex
	waiting map[string]chan *message.Message
}

// expect returns the channel the reply to request id will come on.
func (p *pendingReplies) expect(id string) <-chan *message.Message {
	ch := make(chan *message.Message, 1)
	p.mu.Lock()
	p.waiting[id] = ch
	p.mu.Unlock()
	return ch
}

// forget stops waiting for request id's reply.
func (p *pendingReplies) forget(id string) {
	p.mu.Lock()
	delete(p.waiting, id)
	p.mu.Unlock()
}

// deliver hands msg to the request id waiting for it; it reports false if
// none is (any more).
func (p *pendingReplies) deliver(id string, msg *message.Message) bool {
	p.mu.Lock()
	ch, ok := p.waiting[id]
	delete(p.waiting, id)
	p.mu.Unlock()
	if ok {
		ch <- msg
	}
	return ok
}
