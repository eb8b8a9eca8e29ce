package cqrs

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/framework"
)

// Bus is a service's command, event and query bus: typed messages over the
// App's transport, handled by App handlers. It is safe for concurrent use.
// Register handlers before the App starts; send, publish and request at any
// time after.
type Bus struct {
	app     *framework.App
	routes  map[reflect.Type]string
	timeout time.Duration
	replyTo string
	codecs  codecs

	types    sync.Map // reflect.Type -> info
	prepared sync.Map // "topic\x00group" -> struct{}: groups made to keep commands

	mu       sync.Mutex
	handlers map[string]string // command or query name -> where its handler was registered
	events   map[string]bool   // names of the App handlers of the bus's event subscriptions
	queries  map[string]localQuery

	replies pendingReplies
	stats   struct{ skipped, late, foreign atomic.Int64 }
}

// Option configures a [Bus].
type Option func(*Bus)

// Route sends messages of type T to topic instead of the topic their type
// names ([Topicer], or the type name): for a stream shared by several event
// types, or a topic that already exists.
func Route[T any](topic string) Option {
	return func(b *Bus) { b.routes[reflect.TypeFor[T]()] = topic }
}

// WithCodec encodes what the bus sends with c instead of the App's codec
// (JSON by default); [Protobuf] is the other one millrace ships. Messages
// are decoded by their content_type, whichever codec sent them.
func WithCodec(c framework.Codec) Option {
	return func(b *Bus) { b.codecs.send = c }
}

// RequestTimeout bounds [Request] and remote [Query] calls; default 30s. A
// caller's context with an earlier deadline ends the wait sooner; one with
// a later deadline does not extend it (a handler's context always has one,
// middleware.timeout): raise RequestTimeout for longer requests.
func RequestTimeout(d time.Duration) Option {
	return func(b *Bus) { b.timeout = d }
}

// ReplyTopic sets the topic replies to this service's requests come back
// on; default "<service.name>.replies". Every instance of the service reads
// it with a subscription of its own and takes only its own replies.
func ReplyTopic(topic string) Option {
	return func(b *Bus) { b.replyTo = topic }
}

// DefaultRequestTimeout is the [RequestTimeout] of a bus without the option.
const DefaultRequestTimeout = 30 * time.Second

// New returns a bus on app. Its handlers are App handlers: they get the
// default middleware stack, concurrency, graceful shutdown and the test
// harness unchanged. New registers the App handler that receives the
// replies to this instance's requests, so call it before the App starts.
func New(app *framework.App, opts ...Option) *Bus {
	b := &Bus{
		app:      app,
		routes:   map[reflect.Type]string{},
		timeout:  DefaultRequestTimeout,
		replyTo:  app.Config().Service.Name + ".replies",
		codecs:   codecs{send: app.Codec()},
		handlers: map[string]string{},
		events:   map[string]bool{},
		queries:  map[string]localQuery{},
	}
	b.replies.waiting = map[string]chan *message.Message{}
	for _, opt := range opts {
		opt(b)
	}
	if b.timeout <= 0 {
		app.RegistrationError(fmt.Errorf("cqrs: request timeout %s: must be greater than 0", b.timeout))
	}
	if b.replyTo == "" {
		app.RegistrationError(errors.New("cqrs: empty reply topic"))
	}
	app.Observe(framework.ObserverFunc(func(o framework.Outcome) {
		if o.Skipped && b.isEventHandler(o.Handler) {
			b.stats.skipped.Add(1)
		}
	}))
	b.handleReplies()
	return b
}

// isEventHandler reports whether the App handler named name is one of the
// bus's event subscriptions.
func (b *Bus) isEventHandler(name string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.events[name]
}

// App returns the [framework.App] the bus runs on.
func (b *Bus) App() *framework.App { return b.app }

// Stats counts what the bus set aside without an error.
type Stats struct {
	// SkippedEvents are messages of a type no handler of their subscription
	// takes, acked unhandled (see [framework.MessageTypes]), counted for the
	// bus's event subscriptions ([HandleEvent], [HandleEvents]) alone.
	SkippedEvents int64
	// LateReplies are replies to this instance that came after the caller
	// had given up (its context ended), dropped.
	LateReplies int64
	// ForeignReplies are replies to other instances of the service, seen
	// on the shared reply topic and left alone.
	ForeignReplies int64
}

// Stats returns the bus's counts since it was made.
func (b *Bus) Stats() Stats {
	return Stats{
		SkippedEvents:  b.stats.skipped.Load(),
		LateReplies:    b.stats.late.Load(),
		ForeignReplies: b.stats.foreign.Load(),
	}
}

// claim records that name (a command or query type) has a handler
// registered at site; a second one is a registration error naming both.
func (b *Bus) claim(kind, name, site string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if first, dup := b.handlers[name]; dup {
		b.app.RegistrationError(fmt.Errorf("cqrs: %s %s has two handlers, registered at %s and at %s; a %s has exactly one handler in a service", kind, name, first, site, kind))
		return false
	}
	b.handlers[name] = site
	return true
}
