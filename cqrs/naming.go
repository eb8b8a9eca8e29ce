package cqrs

import (
	"reflect"

	"github.com/millrace/millrace/framework"
)

// Topicer is implemented by message types that choose the topic they are
// published to, instead of the default, their type name. Events of one
// entity that must keep their order across types (OrderPlaced, OrderPaid,
// OrderCancelled) return the same topic: a stream, which a handler of
// several of them ([HandleEvents]) reads in publish order per entity.
// [Route] overrides it for one bus.
type Topicer interface {
	MessageTopic() string
}

// Entity is implemented by messages about one entity (an aggregate, an
// order): its id becomes the message's partition key, so that the
// messages of one entity are handled one at a time and in publish order on
// every transport that orders by key, and is stamped as entity_id
// ([millrace.MetadataEntityID]).
type Entity interface {
	EntityID() string
}

// Name returns the name of messages of type T, as they carry it in
// message_type and as the default topic: [framework.TypeNameOf], that is
// the type's MessageType() or its Go name, then ".v<N>" when it has a
// MessageVersion() N ("orders.PlaceOrder.v1" for a type whose MessageType
// is "orders.PlaceOrder" and MessageVersion 1; "PlaceOrder" for a plain
// struct).
func Name[T any]() string { return framework.TypeNameOf[T]() }

// Topic returns the topic messages of type T are published to on bus b:
// its [Route], or its [Topicer] topic, or its type name.
func Topic[T any](b *Bus) string { return infoOf[T](b).topic }

// info is what the bus knows of a message type.
type info struct {
	name  string // message_type
	topic string
	group string // for commands and queries: the group every handler instance shares
}

// infoOf returns what bus b knows of messages of type T.
func infoOf[T any](b *Bus) info {
	t := reflect.TypeFor[T]()
	if v, ok := b.types.Load(t); ok {
		return v.(info)
	}
	name := Name[T]()
	topic := name
	if r, ok := b.routes[t]; ok {
		topic = r
	} else if tp := topicOf[T](); tp != "" {
		topic = tp
	}
	in := info{name: name, topic: topic, group: name}
	b.types.Store(t, in)
	return in
}

// topicOf returns T's MessageTopic(), or "".
func topicOf[T any]() string {
	var v any
	if t := reflect.TypeFor[T](); t.Kind() == reflect.Pointer {
		v = reflect.New(t.Elem()).Interface()
	} else {
		var zero T
		v = zero
		if _, ok := v.(Topicer); !ok {
			v = new(T)
		}
	}
	if tp, ok := v.(Topicer); ok {
		return tp.MessageTopic()
	}
	return ""
}
