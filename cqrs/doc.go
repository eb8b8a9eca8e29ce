// Package cqrs is how a millrace service expresses its domain: commands ask
// for a change and have exactly one handler; events say what changed and
// fan out to every interested handler; queries ask a read model and get an
// answer. It stands on the App (package framework): its handlers are App
// handlers, so the default middleware stack, concurrency, graceful shutdown
// and the test harness apply to them unchanged. Everything is typed at
// compile time; no topic appears in user code unless the user wants one.
//
//	bus := cqrs.New(app)
//	cqrs.HandleCommand(bus, func(ctx context.Context, c PlaceOrder) error {
//		return cqrs.Publish(ctx, bus, OrderPlaced{ID: c.ID}) // sent when the handler succeeds
//	})
//	cqrs.HandleEvent(bus, "notify", func(ctx context.Context, e OrderPlaced) error { ... })
//	cqrs.HandleCommandWithReply(bus, func(ctx context.Context, c ReserveTable) (TableReserved, error) { ... })
//	cqrs.HandleQuery(bus, func(ctx context.Context, q GetOrder) (OrderView, error) { ... })
//
//	err := cqrs.Send(ctx, bus, PlaceOrder{ID: "o-1"})                           // one handler, somewhere
//	err = cqrs.Publish(ctx, bus, OrderPlaced{ID: "o-1"})                        // every event handler
//	res, err := cqrs.Request[TableReserved](ctx, bus, ReserveTable{ID: "t-2"}) // reply or error, bounded by ctx
//	view, err := cqrs.Query[OrderView](ctx, bus, GetOrder{ID: "o-1"})          // in process, or remote
//
// # Naming
//
// A message's type name, in its message_type metadata, is
// [framework.TypeName]: the type's MessageType() or its Go name, followed
// by ".v<N>" when it has MessageVersion() N. Its topic is its type name,
// unless the type says otherwise ([Topicer]) or the bus routes it
// ([Route]); events of one entity that must keep their order across types
// share a topic (a stream). So a consumer in another service finds a
// message by its type name alone. Commands and queries are point to point:
// their handler consumes in the consumer group named after the type, shared
// by every instance of the service that handles it. Each event handler
// consumes in a group of its own ("<service.name>.<handler name>"). A
// message that says which entity it is about ([Entity]) is keyed by that id,
// so one entity's messages are handled in order on every transport that
// orders by key.
//
// # Request and reply
//
// [Request] and remote [Query] calls send the request with reply_to (the
// service's reply topic, "<service.name>.replies") and reply_instance (the
// sending instance); the handler's reply carries the request's id as
// causation_id, and reply_error when it failed. Each instance reads the
// reply topic with one subscription of its own ([framework.Ephemeral]),
// however many requests are in flight, and takes only its own replies. This
// is Watermill's components/requestreply without its cost: its pub/sub
// backend opens a subscription per request.
//
// Watermill's components/cqrs is not used as such: its processors mount
// handlers on a message.Router, and millrace's handlers run in the App. The
// vocabulary is Watermill's: command bus, event bus, event group, handlers
// with and without result.
package cqrs
