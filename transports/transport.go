package transports

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// Transport is an open connection to one broker.
//
// Every transport gives at-least-once delivery: a message is handed to a
// consumer until one of them acks it. Nack means "deliver again later", never
// "drop".
type Transport interface {
	// Publisher returns the transport's publisher. It is shared by the whole
	// service, safe for concurrent use, and closed by Close, not by callers.
	Publisher() message.Publisher

	// Subscriber returns a subscriber whose subscriptions consume as members
	// of consumer group group: every group receives every message published
	// to a topic, and within one group each message goes to one of the
	// group's subscriptions. Calling Subscribe several times on the returned
	// subscriber, or on subscribers of the same group, shares the group's
	// messages among those subscriptions. The subscriber is closed by the
	// caller or, at the latest, by Close.
	Subscriber(group string) (message.Subscriber, error)

	// Close closes the publisher and every subscriber the transport made,
	// and releases the connection. It is safe to call more than once.
	Close() error
}

// Deps is what a transport may use besides its own config.
type Deps struct {
	// Logger receives the transport's log lines. Nil means slog.Default().
	Logger *slog.Logger
}

// WithDefaults returns d with its zero fields filled in: a nil Logger
// becomes [slog.Default]().
func (d Deps) WithDefaults() Deps {
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	return d
}

// Registry holds the transport kinds a service can choose from. It is built
// once at start and only read afterwards.
type Registry struct {
	kinds map[string]Kind
}

// NewRegistry returns a registry of kinds. Two kinds with one name, or a kind
// without name, config or Open function, is an error.
func NewRegistry(kinds ...Kind) (*Registry, error) {
	r := &Registry{kinds: make(map[string]Kind, len(kinds))}
	for _, k := range kinds {
		switch {
		case k.Name == "":
			return nil, errors.New("transports: kind with empty name")
		case k.DefaultConfig == nil || k.Open == nil:
			return nil, fmt.Errorf("transports: kind %q needs both DefaultConfig and Open", k.Name)
		}
		if _, dup := r.kinds[k.Name]; dup {
			return nil, fmt.Errorf("transports: kind %q registered twice", k.Name)
		}
		r.kinds[k.Name] = k
	}
	return r, nil
}

// Names returns the names of the registered kinds, sorted.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.kinds))
	for n := range r.kinds {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// DefaultConfigs returns a new default config for every registered kind,
// keyed by kind name: the sections that may appear under transport: in config.
func (r *Registry) DefaultConfigs() map[string]any {
	out := make(map[string]any, len(r.kinds))
	for n, k := range r.kinds {
		out[n] = k.DefaultConfig()
	}
	return out
}

// CheckKind returns a *[millrace.ConfigError] for key transport.kind if name
// is not a registered kind; the error lists the known kinds (see
// [ValidateKind]).
func (r *Registry) CheckKind(name string) error {
	return ValidateKind(name, r.Names(), nil)
}

// Open checks name and cfg with [ValidateKind] (validation errors carry keys
// prefixed with "transport.<name>") and opens the transport that name
// selects, with deps after [Deps.WithDefaults].
func (r *Registry) Open(ctx context.Context, name string, cfg any, deps Deps) (Transport, error) {
	if err := ValidateKind(name, r.Names(), cfg); err != nil {
		return nil, err
	}
	tr, err := r.kinds[name].Open(ctx, cfg, deps.WithDefaults())
	if err != nil {
		return nil, fmt.Errorf("open transport %q: %w", name, err)
	}
	return tr, nil
}

// Retainer is implemented by transports on which a message published to a
// topic that no consumer group has subscribed to yet would be dropped (a
// RabbitMQ exchange without bound queues). Retain makes the transport keep
// every message published to topic from now on, readable by Browse, so that
// a dead-letter topic holds its messages before any operator reads it.
// Transports that keep topics as logs (memory, Kafka, SQL) need not
// implement it. The framework calls Retain for the poison topic at start.
type Retainer interface {
	Retain(ctx context.Context, topic string) error
}

// PartitionedSubscriber is implemented by subscribers whose subscriptions
// keep order per partition rather than per subscription: one subscription
// hands out a message of each of its partitions at once, and the next
// message of a partition only after the previous one of that partition was
// acked or nacked (Kafka, where a consumer group member reads every
// partition assigned to it). The framework handles the messages of such a
// subscription concurrently, at most one per partition, and those of other
// subscribers one at a time per subscription.
type PartitionedSubscriber interface {
	message.Subscriber
	// OrdersByPartition marks the subscriber; it does nothing.
	OrdersByPartition()
}

// EnsureUUID gives msg an id when it has none, as happens with a message
// that a client other than Watermill published (it sets no
// _watermill_message_uuid header). The id is "<source>:" followed by key,
// when key identifies the message stably across redeliveries (a Kafka
// topic/partition/offset, an SQL offset, an AMQP message-id), so that
// deduplication still recognises a redelivery; with an empty key it is a
// new random UUID. It reports whether it set an id.
func EnsureUUID(msg *message.Message, source, key string) bool {
	if msg.UUID != "" {
		return false
	}
	if key != "" {
		msg.UUID = source + ":" + key
	} else {
		msg.UUID = watermill.NewUUID()
	}
	return true
}
