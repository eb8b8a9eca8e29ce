package framework

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

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
	ephemeral   bool          // one subscription of this instance alone (see Ephemeral)
	stop        chan struct{} // closed when it must stop taking messages (App.stopIntake or stopLate)
	middleware  []message.HandlerMiddleware
	types       []string            // message types it takes; nil: all (see MessageTypes)
	fn          message.HandlerFunc // the innermost function, see invoke
	mw          MiddlewareConfig    // this handler's copy of the default stack's config
	consumer    millrace.Consumer   // on every message's context (millrace.ConsumerFrom)
	metrics     *handlerMetrics     // nil when metrics are off
	running     atomic.Int32        // consume loops of its subscriptions that run
	base        context.Context     // App's handler context carrying consumer
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

// Ephemeral makes the handler read its topic with one subscription of this
// App instance alone, in no consumer group, from the moment the App starts:
// on a transport that can ([transports.EphemeralSubscriber]) the broker
// keeps nothing for it once the App stops. Elsewhere it consumes in a group
// of its own, "<service.name>.<handler>.<instance id>". For messages meant
// for one instance, such as replies to its requests; concurrency is 1, and
// delayed retries are off (a redelivery scheduled for the instance's group
// would find no subscription after a restart).
func Ephemeral() HandlerOption {
	return func(h *handler) { h.ephemeral = true }
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
// published with [App.Publish] have been sent; an error nacks it, so the
// transport delivers it again (middleware may retry it first or send it to
// the poison queue). A payload that cannot be decoded into T fails with a
// permanent error ([millrace.IsPermanent]) that names the type and the
// problem; the message is nacked, never dropped.
//
// Messages whose message_type metadata names another type than T's
// ([TypeNameOf], or the names given with [MessageTypes]) are acked without
// running the middleware or fn, so several types can share a topic and each
// handler sees its own; observers see them as skipped ([Outcome.Skipped]).
// Messages without message_type (from clients that do not set it) are
// decoded into T.
//
// Registration problems (empty or duplicate name, empty topic, bad options)
// are reported by Start and Run, naming the handler.
func Handle[T any](app *App, name, topic string, fn func(ctx context.Context, msg T) error, opts ...HandlerOption) {
	typeName := TypeNameOf[T]()
	codec := app.codec
	var typed []HandlerOption
	if typeName != "" {
		typed = append(typed, MessageTypes(typeName))
	}
	app.register(name, topic, func(msg *message.Message) ([]*message.Message, error) {
		var v T
		if err := codec.Unmarshal(msg.Payload, &v); err != nil {
			return nil, millrace.Permanent(&DecodeError{Type: typeName, MessageID: msg.UUID, Err: err})
		}
		return nil, fn(msg.Context(), v)
	}, append(typed, opts...))
}

// MessageTypes makes the handler take only messages whose message_type
// metadata is one of names (and messages without message_type); the others
// are acked at once, before any middleware runs, and reported to observers
// as skipped ([Outcome.Skipped]). It is how handlers of different types
// share one topic. [Handle] sets it to T's type name; give it to replace
// that name (a versioned name, say) or to filter a [HandleRaw] handler.
func MessageTypes(names ...string) HandlerOption {
	return func(h *handler) { h.types = names }
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

// invoke is the innermost layer, right around the handler function: it
// drops what an earlier attempt left pending (middleware may call it several
// times, once per attempt), runs fn, and on success sends what fn returned
// and what it published through [App.Publish]. Sending here, inside every
// middleware, means an attempt counts as successful only when its output
// was sent: deduplication never marks a message done whose output was lost.
func (h *handler) invoke(msg *message.Message) ([]*message.Message, error) {
	hd := handlingFrom(msg.Context())
	if hd != nil {
		hd.reset()
	}
	produced, err := h.fn(msg)
	if err != nil {
		return nil, err
	}
	if err := h.send(hd, msg, produced); err != nil {
		return nil, err
	}
	if hd != nil {
		hd.handled = true
	}
	return nil, nil
}

// send publishes what handling msg produced: the messages returned (to the
// PublishTo topic) after those published with [App.Publish], stamped with
// the envelope, each topic's messages in one call in the order they were
// published. It is the one path by which a handler's output leaves, whether
// the handler function or a middleware outside it returned it.
func (h *handler) send(hd *handling, msg *message.Message, returned []*message.Message) error {
	if len(returned) > 0 {
		if h.publishTo == "" {
			return ErrNoPublishTopic
		}
		for _, m := range returned {
			h.app.stamp(msg, m)
		}
	}
	var pending []outgoing
	if hd != nil {
		pending = hd.take(true)
	}
	for _, m := range returned {
		pending = append(pending, outgoing{topic: h.publishTo, msg: m})
	}
	if err := h.app.publishAll(msg.Context(), pending); err != nil {
		if hd != nil {
			hd.reset()
		}
		return err
	}
	return nil
}
