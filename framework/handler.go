package framework

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
)

// handler is one registered consumer: a topic, a consumer group, and the
// function that handles each message, wrapped in middleware.
type handler struct {
	app         *App
	name        string
	topic       string
	group       string
	concurrency int
	maxInFlight int // 0: one per partition
	publishTo   string
	middleware  []message.HandlerMiddleware
	fn          message.HandlerFunc // the innermost function, see deliver
	mw          MiddlewareConfig    // this handler's copy of the default stack's config
	info        millrace.Delivery   // on every delivery's context (millrace.DeliveryFrom)
	base        context.Context     // App's handler context carrying info
}

// HandlerOption adjusts one handler.
type HandlerOption func(*handler)

// Concurrency sets how many subscriptions the handler has in its consumer
// group (default: config handlers.concurrency). Each subscription's messages
// are handled in turn, except on a transport whose subscriptions order by
// partition (Kafka, see transports.PartitionedSubscriber): there one message
// of each partition assigned to the subscription is handled at once. So on a
// transport that orders by partition key (memory, Kafka) messages of one key
// are never handled concurrently nor out of order, whatever n is.
func Concurrency(n int) HandlerOption {
	return func(h *handler) { h.concurrency = n }
}

// MaxInFlight caps how many messages of one of the handler's subscriptions
// are handled at once on transports that hand out one message per
// partition (Kafka); 0 means one per assigned partition (default: config
// handlers.max_in_flight). Order per partition is kept either way.
func MaxInFlight(n int) HandlerOption {
	return func(h *handler) { h.maxInFlight = n }
}

// Group sets the consumer group the handler consumes in. The default is
// "<service.name>.<handler name>": every handler gets every message of its
// topic, and the instances of one service share them.
func Group(name string) HandlerOption {
	return func(h *handler) { h.group = name }
}

// PublishTo sets the topic that messages returned by a raw handler
// (HandleRaw) are published to. Typed handlers publish with App.Publish.
func PublishTo(topic string) HandlerOption {
	return func(h *handler) { h.publishTo = topic }
}

// Use adds Watermill middleware around this handler alone, inside the
// App-wide middleware (App.Use) and the default stack; the first one given
// is the outermost.
func Use(m ...message.HandlerMiddleware) HandlerOption {
	return func(h *handler) { h.middleware = append(h.middleware, m...) }
}

// Handle registers fn to handle the messages published to topic, decoded
// into a T with the App's codec (JSON by default).
//
// fn's error decides the message's fate: nil acks it, after the messages fn
// published with App.Publish have been sent; an error nacks it, so the
// transport delivers it again (middleware may retry it first or send it to
// the poison queue). A payload that cannot be decoded into T fails with a
// permanent error (millrace.IsPermanent) that names the type and the
// problem; the message is nacked, never dropped.
//
// Messages whose message_type metadata names another type are acked without
// calling fn, so several types can share a topic and each handler sees its
// own. Messages without message_type (from clients that do not set it) are
// decoded into T.
//
// Registration problems (empty or duplicate name, empty topic, bad options)
// are reported by Start and Run, naming the handler.
func Handle[T any](app *App, name, topic string, fn func(ctx context.Context, msg T) error, opts ...HandlerOption) {
	typeName := TypeNameOf[T]()
	codec := app.codec
	app.register(name, topic, func(msg *message.Message) ([]*message.Message, error) {
		if got := msg.Metadata.Get(millrace.MetadataType); got != "" && typeName != "" && got != typeName {
			if app.logger.Enabled(msg.Context(), slog.LevelDebug) {
				app.logger.LogAttrs(msg.Context(), slog.LevelDebug, "skipping message of another type",
					slog.String("handler", name), slog.String("message_id", msg.UUID),
					slog.String("message_type", got), slog.String("expected_type", typeName))
			}
			return nil, nil
		}
		var v T
		if err := codec.Unmarshal(msg.Payload, &v); err != nil {
			return nil, millrace.Permanent(&DecodeError{Type: typeName, MessageID: msg.UUID, Err: err})
		}
		return nil, fn(msg.Context(), v)
	}, opts)
}

// HandleRaw registers a Watermill handler function for topic: it receives
// the message itself, metadata and all. Messages it returns are published to
// the topic set with PublishTo (returning messages without it is an error);
// they, and whatever it published with App.Publish, are sent before the
// handled message is acked.
func HandleRaw(app *App, name, topic string, fn message.HandlerFunc, opts ...HandlerOption) {
	app.register(name, topic, fn, opts)
}

// DecodeError reports a payload that could not be decoded into the type a
// handler expects. Handle wraps it with millrace.Permanent: retrying cannot
// fix a payload.
type DecodeError struct {
	// Type is the type name the handler expects.
	Type string
	// MessageID is the id of the offending message.
	MessageID string
	// Err is the codec's error.
	Err error
}

// Error says which type could not be decoded from which message, and why.
func (e *DecodeError) Error() string {
	return fmt.Sprintf("decode %s from message %s: %v", e.Type, e.MessageID, e.Err)
}

// Unwrap returns the codec's error.
func (e *DecodeError) Unwrap() error { return e.Err }

// ErrNoPublishTopic is returned when a raw handler returns messages but has
// no PublishTo topic.
var ErrNoPublishTopic = errors.New("handler returned messages but has no PublishTo topic")

// deliver is the innermost layer, right around the handler function: it
// resets the delivery's outbox (middleware may call it several times, once
// per attempt), runs fn, and on success publishes what fn returned and what
// it published through App.Publish. Publishing here, inside every
// middleware, means an attempt counts as successful only when its output
// was sent: deduplication never marks a message done whose output was lost.
func (h *handler) deliver(msg *message.Message) ([]*message.Message, error) {
	d := deliveryFrom(msg.Context())
	if d != nil {
		d.outbox = d.outbox[:0]
	}
	produced, err := h.fn(msg)
	if err != nil {
		return nil, err
	}
	if len(produced) > 0 {
		if h.publishTo == "" {
			return nil, ErrNoPublishTopic
		}
		for _, p := range produced {
			h.app.stamp(msg.Context(), p)
		}
		if err := h.app.publisher.Publish(h.publishTo, produced...); err != nil {
			return nil, fmt.Errorf("publish to %s: %w", h.publishTo, err)
		}
	}
	if d != nil {
		for i, o := range d.outbox {
			if err := h.app.publisher.Publish(o.topic, o.msg); err != nil {
				return nil, fmt.Errorf("publish to %s (%d of %d sent): %w", o.topic, i, len(d.outbox), err)
			}
		}
		d.outbox = d.outbox[:0]
		d.handled = true
	}
	return nil, nil
}
