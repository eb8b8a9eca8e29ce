package aggregate

import (
	"context"

	"github.com/millrace/millrace/cqrs"
	"github.com/millrace/millrace/framework"
)

// HandleCommand registers, on bus, the handler of commands of type C as a
// command on an aggregate of r: for each command it takes the aggregate's
// id from id, then loads, decides and saves in one call
// ([Repository.Handle]), running again from the load when the save meets a
// concurrent writer, up to the repository's Attempts. It is a
// [cqrs.HandleCommand] handler, so one instance handles each command and
// the App's middleware decides what a failure means: decide's errors (wrap
// them with millrace.Permanent when retrying cannot help) and a conflict
// that outlasted the attempts (transient: the command is delivered again).
//
// The events are stamped with the command's correlation id, its message id
// as causation id, and the App's service name. They are in the store, not
// on the transport: publish them with a projection that follows the store
// (package projection) or through the outbox.
func HandleCommand[C any, A Aggregate](bus *cqrs.Bus, r *Repository[A], id func(C) string, decide func(ctx context.Context, a A, c C) error, opts ...framework.HandlerOption) {
	if r.service == "" {
		clone := *r
		clone.service = bus.App().Config().Service.Name
		r = &clone
	}
	cqrs.HandleCommand(bus, func(ctx context.Context, c C) error {
		_, err := r.Handle(ctx, id(c), func(ctx context.Context, a A) error { return decide(ctx, a, c) })
		return err
	}, opts...)
}
