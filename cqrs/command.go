package cqrs

import (
	"context"
	"fmt"
	"runtime"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/framework"
)

// HandleCommand registers fn as the one handler of commands of type C in
// this service. Commands are point to point: the handler consumes from the
// command's topic ([Name], or [Topicer], or [Route]) in the consumer group
// named after the command, which every instance of the service shares, so
// each command is handled once, by one instance. A second handler of C on
// the bus is an error at start naming both.
//
// fn's error decides the command's fate as for any App handler (see
// [framework.Handle]): the default middleware stack retries it, schedules
// it again, or poisons it. opts are the App's handler options
// ([framework.Concurrency], [framework.WithMiddleware], ...).
func HandleCommand[C any](b *Bus, fn func(ctx context.Context, c C) error, opts ...framework.HandlerOption) {
	in := infoOf[C](b)
	if !b.claim("command", in.name, caller()) {
		return
	}
	framework.HandleRaw(b.app, in.name, in.topic, func(msg *message.Message) ([]*message.Message, error) {
		c, err := decode[C](b.codecs, in.name, msg)
		if err != nil {
			return nil, err
		}
		return nil, fn(msg.Context(), c)
	}, pointToPoint(in, opts)...)
}

// Send sends command c to its handler, wherever it runs. It returns once
// the transport has the command, not when it was handled; a command sent
// before its handler's service ever started waits for it (also on
// RabbitMQ: Send makes the command's queue exist first). Called in a
// handler, the command is sent when the handler succeeds (see
// [framework.App.Publish]) and inherits the handled message's correlation
// id.
func Send[C any](ctx context.Context, b *Bus, c C, opts ...framework.PublishOption) error {
	in := infoOf[C](b)
	msg, err := b.encode(in.name, c, opts)
	if err != nil {
		return err
	}
	if err := b.prepare(ctx, in); err != nil {
		return err
	}
	return b.app.PublishMessage(ctx, in.topic, msg)
}

// pointToPoint returns the handler options of a command or query handler:
// the shared group and the one type it takes, then the caller's.
func pointToPoint(in info, opts []framework.HandlerOption) []framework.HandlerOption {
	return append([]framework.HandlerOption{framework.Group(in.group), framework.MessageTypes(in.name)}, opts...)
}

// prepare makes the broker keep in's messages for its group, once per bus.
func (b *Bus) prepare(ctx context.Context, in info) error {
	key := in.topic + "\x00" + in.group
	if _, done := b.prepared.Load(key); done {
		return nil
	}
	if err := b.app.Prepare(ctx, in.topic, in.group); err != nil {
		return fmt.Errorf("cqrs: send %s: %w", in.name, err)
	}
	b.prepared.Store(key, struct{}{})
	return nil
}

// caller names the code that registered a handler, for errors.
func caller() string {
	if _, file, line, ok := runtime.Caller(2); ok {
		return fmt.Sprintf("%s:%d", file, line)
	}
	return "an unknown place"
}
