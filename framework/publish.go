package framework

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/trace"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/middleware"
)

// PublishOption adjusts a message before it is published.
type PublishOption func(*message.Message)

// WithKey sets the message's partition key: on transports that order by key
// (memory, Kafka) messages with the same key are consumed in publish order,
// one at a time per consumer group. Use the id of the entity the message is
// about (an order id).
func WithKey(key string) PublishOption {
	return func(m *message.Message) { m.Metadata.Set(millrace.MetadataPartitionKey, key) }
}

// WithMetadata sets one metadata entry on the message.
func WithMetadata(key, value string) PublishOption {
	return func(m *message.Message) { m.Metadata.Set(key, value) }
}

// WithID sets the message's id instead of a new random one, for publishers
// that need a stable id (for example to let consumers deduplicate).
func WithID(id string) PublishOption {
	return func(m *message.Message) { m.UUID = id }
}

// Publish encodes v with the App's codec and publishes it to topic, with the
// envelope stamped on (see package millrace: type, correlation and causation
// ids, publishing service and time).
//
// Called with a handler's context, Publish does not send at once: the
// message is sent when the handler returns nil, before the handled message is
// acked, and discarded if the handler fails — so a failed attempt publishes
// nothing and a retried one does not publish twice. The message inherits the
// handled message's correlation id and gets its id as causation id. It is
// safe to publish from goroutines the handler starts, as long as they
// publish before the handler returns; a publish on the handler's context
// after its output was sent (the handler succeeded) is sent at once, and
// one after the handler failed for good (or its message was settled
// without its output, as by poisoning) returns [ErrHandlingFailed].
//
// Called with any other context, or one made by [Immediate], Publish sends
// at once and returns the transport's error.
func (a *App) Publish(ctx context.Context, topic string, v any, opts ...PublishOption) error {
	if topic == "" {
		return errors.New("publish: empty topic")
	}
	payload, err := a.codec.Marshal(v)
	if err != nil {
		return fmt.Errorf("publish %T to %s: encode: %w", v, topic, err)
	}
	msg := message.NewMessage(watermill.NewUUID(), payload)
	msg.Metadata.Set(millrace.MetadataType, TypeName(v))
	msg.Metadata.Set(millrace.MetadataContentType, a.codec.ContentType())
	for _, opt := range opts {
		opt(msg)
	}
	return a.PublishMessage(ctx, topic, msg)
}

// PublishMessage publishes messages built by the caller, stamping the
// envelope entries they lack. Several messages go to the transport in one
// call, which batches them where the broker can (one INSERT on SQL, one
// produce request on Kafka). Like Publish, it defers sending to the end of a
// successful handler when ctx is a handler's context; the handler's
// messages of one topic then go in one call too, in the order published.
func (a *App) PublishMessage(ctx context.Context, topic string, msgs ...*message.Message) error {
	if topic == "" {
		return errors.New("publish: empty topic")
	}
	hd := handlingFrom(ctx)
	var handled *message.Message
	if hd != nil {
		handled = hd.msg
	}
	for _, msg := range msgs {
		a.stamp(handled, msg)
	}
	if hd != nil && ctx.Value(immediateKey{}) == nil {
		held, err := hd.hold(topic, msgs)
		if err != nil {
			return fmt.Errorf("publish to %s: %w", topic, err)
		}
		if held {
			return nil
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	if err := a.publish(ctx, topic, msgs); err != nil {
		return fmt.Errorf("publish to %s: %w", topic, err)
	}
	return nil
}

// publish sends msgs to topic in one call to the transport, in a publish
// span that their trace context names, and counts them.
//
// A message with no context of its own gets ctx for the call, so that ctx
// bounds what the transport waits for (a broker's confirm), and gets none
// again afterwards: the caller may reuse it, and ctx must not outlive the
// call in it.
func (a *App) publish(ctx context.Context, topic string, msgs []*message.Message) error {
	span := a.tracing.startPublish(ctx, topic, msgs)
	var lent []*message.Message
	if ctx.Done() != nil {
		for _, m := range msgs {
			if m.Context() == context.Background() {
				m.SetContext(ctx)
				lent = append(lent, m)
			}
		}
	}
	err := a.publisher.Publish(topic, msgs...)
	for _, m := range lent {
		m.SetContext(context.Background())
	}
	if err != nil && ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		err = fmt.Errorf("%w (%w)", err, context.Cause(ctx))
	}
	endPublish(span, err)
	a.metrics.countPublish(topic, len(msgs), err)
	return err
}

// Withdraw drops what the handler running in ctx has published so far in
// this attempt (with [App.Publish] or [App.PublishMessage] on a handler's
// context): none of it is sent, whatever the handler returns. Messages sent
// on an [Immediate] context are gone already. Outside a handler it does
// nothing.
func Withdraw(ctx context.Context) {
	if hd := handlingFrom(ctx); hd != nil {
		hd.take(false)
	}
}

// ErrHandlingFailed is returned by a publish on the context of a handler
// that has failed and whose message was given back to the broker: what it
// published is dropped, and so is this.
var ErrHandlingFailed = errors.New("the handler of this context failed; its publishes are dropped")

type immediateKey struct{}

// Immediate returns a handler's context whose publishes are sent at once
// rather than when the handler returns, still carrying the handled
// message's correlation id: for a message the handler must see delivered
// before it can go on, such as a request whose reply it waits for. What is
// sent this way is not withdrawn if the handler then fails.
func Immediate(ctx context.Context) context.Context {
	return context.WithValue(ctx, immediateKey{}, true)
}

// Stamp sets the envelope entries that msgs lack, as PublishMessage does
// with ctx, without publishing them: for messages that are written
// somewhere first and published later, such as through the transactional
// outbox. In a handler's context they inherit the handled message's
// correlation id and get its id as causation id. A message without trace
// context gets ctx's (the W3C traceparent and tracestate entries), so that
// its consumers continue the trace of the code that stamped it, however
// much later it is published.
func (a *App) Stamp(ctx context.Context, msgs ...*message.Message) {
	var handled *message.Message
	if hd := handlingFrom(ctx); hd != nil {
		handled = hd.msg
	}
	traced := trace.SpanContextFromContext(ctx).IsValid()
	for _, msg := range msgs {
		a.stamp(handled, msg)
		if traced && msg.Metadata.Get("traceparent") == "" {
			propagator.Inject(ctx, metadataCarrier(msg.Metadata))
		}
	}
}

// stamp sets the envelope entries that msg lacks: the correlation and
// causation ids it inherits from handled, the message being handled when it
// was published (nil outside a handler: msg starts a flow), by
// [middleware.Correlate], and the publishing service and time.
func (a *App) stamp(handled, msg *message.Message) {
	middleware.Correlate(handled, msg)
	md := msg.Metadata
	if md[millrace.MetadataPublishedBy] == "" {
		md[millrace.MetadataPublishedBy] = a.cfg.Service.Name
	}
	if md[millrace.MetadataPublishedAt] == "" {
		md[millrace.MetadataPublishedAt] = time.Now().UTC().Format(time.RFC3339Nano)
	}
}

// publishAll sends messages waiting for their topics: each topic's in one
// Publish call, in the order they were published, topics in the order of
// their first message. It stops at the first topic that fails. ctx is the
// handler's, whose trace the messages join.
func (a *App) publishAll(ctx context.Context, pending []outgoing) error {
	switch len(pending) {
	case 0:
		return nil
	case 1:
		if err := a.publish(ctx, pending[0].topic, []*message.Message{pending[0].msg}); err != nil {
			return fmt.Errorf("publish to %s: %w", pending[0].topic, err)
		}
		return nil
	}
	sent := 0
	done := make([]bool, len(pending))
	for i, first := range pending {
		if done[i] {
			continue
		}
		batch := []*message.Message{first.msg}
		for j := i + 1; j < len(pending); j++ {
			if !done[j] && pending[j].topic == first.topic {
				batch = append(batch, pending[j].msg)
				done[j] = true
			}
		}
		if err := a.publish(ctx, first.topic, batch); err != nil {
			return fmt.Errorf("publish %d messages to %s (%d of %d sent before): %w", len(batch), first.topic, sent, len(pending), err)
		}
		sent += len(batch)
	}
	return nil
}

// appPublisher publishes through the App's own path (metrics, trace
// context) for middleware that takes a message.Publisher.
type appPublisher struct{ a *App }

func (p appPublisher) Publish(topic string, msgs ...*message.Message) error {
	return p.a.publish(context.Background(), topic, msgs)
}

func (appPublisher) Close() error { return nil }
