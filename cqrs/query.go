package cqrs

import (
	"context"
	"fmt"

	"github.com/millrace/millrace/framework"
)

// localQuery runs a query handler registered on this bus.
type localQuery func(ctx context.Context, q any) (any, error)

// HandleQuery registers fn as the one handler of queries of type Q in this
// service: [Query] calls it in process when it is asked on this bus, and
// other services reach it over the transport by request and reply (its
// topic and group follow the rules of commands, see [HandleCommand]). opts
// are the App's handler options, for the remote side.
func HandleQuery[Q, R any](b *Bus, fn func(ctx context.Context, q Q) (R, error), opts ...framework.HandlerOption) {
	in := infoOf[Q](b)
	if !b.claim("query", in.name, caller()) {
		return
	}
	b.mu.Lock()
	b.queries[in.name] = func(ctx context.Context, q any) (any, error) { return fn(ctx, q.(Q)) }
	b.mu.Unlock()
	handleRequests(b, in, fn, opts)
}

// Query asks query q and returns the answer: in process when this bus has
// the handler of Q, otherwise by request and reply to the service that has
// it (see [Request]: bounded by ctx and the bus's [RequestTimeout],
// whichever ends first). The
// caller does not change when the handler moves to another service. The
// handler's error is returned as it is in process, and as a
// [*RemoteError] from another service.
func Query[R, Q any](ctx context.Context, b *Bus, q Q) (R, error) {
	in := infoOf[Q](b)
	b.mu.Lock()
	local := b.queries[in.name]
	b.mu.Unlock()
	if local == nil {
		return request[R](ctx, b, in, q, nil)
	}
	var zero R
	answer, err := local(ctx, q)
	if err != nil {
		return zero, err
	}
	r, ok := answer.(R)
	if !ok {
		return zero, fmt.Errorf("cqrs: query %s answers %T, not the %s asked for", in.name, answer, Name[R]())
	}
	return r, nil
}
