package cqrs

import (
	"context"
	"fmt"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/framework"
)

// EventHandler is one typed function of a [HandleEvents] subscription,
// made by [On].
type EventHandler struct {
	name  string
	topic func(*Bus) string
	// handle decodes msg and calls the function.
	handle func(b *Bus, msg *message.Message) error
}

// On returns the handler of events of type E that calls fn, for
// [HandleEvents].
func On[E any](fn func(ctx context.Context, e E) error) EventHandler {
	name := Name[E]()
	return EventHandler{
		name:  name,
		topic: func(b *Bus) string { return infoOf[E](b).topic },
		handle: func(b *Bus, msg *message.Message) error {
			e, err := decode[E](b.codecs, name, msg)
			if err != nil {
				return err
			}
			return fn(msg.Context(), e)
		},
	}
}

// HandleEvent registers fn, under name, to handle every event of type E.
// Each event handler consumes in a consumer group of its own
// ("<service.name>.<name>" by default), so every handler gets every event,
// and the instances of one service share them. opts are the App's handler
// options.
func HandleEvent[E any](b *Bus, name string, fn func(ctx context.Context, e E) error, opts ...framework.HandlerOption) {
	HandleEvents(b, name, []EventHandler{On(fn)}, opts...)
}

// HandleEvents registers one subscription, under name, for events of
// several types that share a topic (a stream, see [Topicer] and [Route]):
// each event goes to the handler of its type, in the order the events were
// published, so one entity's events keep their order across types on every
// transport that orders by key (Watermill's event group processor). An
// event of a type none of them takes is acked and skipped, counted in
// [Stats.SkippedEvents], never retried or poisoned. Types on different
// topics, or one type twice, are an error at start.
func HandleEvents(b *Bus, name string, handlers []EventHandler, opts ...framework.HandlerOption) {
	if len(handlers) == 0 {
		b.app.RegistrationError(fmt.Errorf("cqrs: event handler %q handles no event types", name))
		return
	}
	byType := make(map[string]EventHandler, len(handlers))
	names := make([]string, 0, len(handlers))
	topic := handlers[0].topic(b)
	var problems []string
	for _, h := range handlers {
		if _, dup := byType[h.name]; dup {
			problems = append(problems, fmt.Sprintf("event type %s is handled twice", h.name))
			continue
		}
		if t := h.topic(b); t != topic {
			problems = append(problems, fmt.Sprintf("event type %s is on topic %q, %s on %q: one subscription reads one topic (give them one with MessageTopic or cqrs.Route)", h.name, t, handlers[0].name, topic))
		}
		byType[h.name] = h
		names = append(names, h.name)
	}
	if len(problems) > 0 {
		b.app.RegistrationError(fmt.Errorf("cqrs: event handler %q: %s", name, strings.Join(problems, "; ")))
		return
	}
	b.mu.Lock()
	b.events[name] = true
	b.mu.Unlock()
	framework.HandleRaw(b.app, name, topic, func(msg *message.Message) ([]*message.Message, error) {
		h, ok := byType[msg.Metadata.Get(millrace.MetadataType)]
		if !ok {
			if len(handlers) > 1 {
				// No type: the subscription cannot tell which it is.
				return nil, millrace.Permanent(fmt.Errorf("cqrs: event %s on %q has no message_type; handler %q takes several types", msg.UUID, topic, name))
			}
			h = handlers[0] // a foreign client's event without a type
		}
		return nil, h.handle(b, msg)
	}, append([]framework.HandlerOption{framework.MessageTypes(names...)}, opts...)...)
}

// Publish publishes event e to every handler of its type, in every service.
// It returns once the transport has it. Called in a handler, the event is
// published when the handler succeeds (see [framework.App.Publish]) and
// inherits the handled message's correlation id; its partition key is its
// [Entity] id when it has one.
func Publish[E any](ctx context.Context, b *Bus, e E, opts ...framework.PublishOption) error {
	in := infoOf[E](b)
	msg, err := b.encode(in.name, e, opts)
	if err != nil {
		return err
	}
	return b.app.PublishMessage(ctx, in.topic, msg)
}
