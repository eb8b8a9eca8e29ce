package framework

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/middleware"
)

// consume handles the messages of one subscription until the App stops
// taking messages or the subscription ends, then waits for the messages it
// is handling. With concurrent (a transports.PartitionedSubscriber's
// subscription) each message is handled in a goroutine of its own, as soon
// as it arrives: the subscription hands out at most one message per
// partition at once, so a partition's messages are still handled one at a
// time, in order. Otherwise it handles one message at a time.
func (a *App) consume(h *handler, chain message.HandlerFunc, ch <-chan *message.Message, concurrent bool) {
	defer a.loops.Done()
	// Concurrent messages go to idle workers, or to a new one when all are
	// busy; workers wait for the next message rather than exit, so there
	// are as many as messages were out at once, and a handler's stack,
	// once grown, serves the next message.
	var workers sync.WaitGroup
	idle := make(chan *message.Message)
	defer func() {
		close(idle)
		workers.Wait()
	}()
	work := func(msg *message.Message) {
		a.handle(h, chain, msg)
		for msg := range idle {
			a.handle(h, chain, msg)
		}
	}
	for {
		select {
		case <-a.stopIntake:
			return
		case msg, ok := <-ch:
			if !ok {
				select {
				case <-a.stopIntake:
				default:
					a.failed(fmt.Errorf("handler %q: subscription to %q in group %q ended unexpectedly", h.name, h.topic, h.group))
				}
				return
			}
			select {
			case <-a.stopIntake:
				msg.Nack() // shutting down: leave it to the broker
				return
			default:
			}
			if !concurrent {
				a.handle(h, chain, msg)
				continue
			}
			select {
			case idle <- msg:
			default:
				workers.Go(func() { work(msg) })
			}
		}
	}
}

// handle runs one message through the handler's middleware chain and acks
// or nacks it.
func (a *App) handle(h *handler, chain message.HandlerFunc, msg *message.Message) {
	a.inFlight.Add(1)
	defer a.inFlight.Add(-1)

	d := &delivery{base: h.base, values: msg.Context(), msg: msg, handler: h}
	msg.SetContext(d)

	var start time.Time
	if len(a.observers) > 0 {
		start = time.Now()
	}
	err := h.run(chain, msg)
	if err == nil {
		msg.Ack()
	} else {
		msg.Nack()
		a.logFailure(d, err)
	}
	if len(a.observers) > 0 {
		o := Outcome{Handler: h.name, Topic: h.topic, Group: h.group, Message: msg, Err: err, Handled: err == nil && d.handled, Duration: time.Since(start)}
		for _, obs := range a.observers {
			obs.MessageHandled(o)
		}
	}
}

// run calls the chain, turning a panic into an error so that one bad
// message cannot take the process down, and publishes messages that
// middleware outside deliver returned.
func (h *handler) run(chain message.HandlerFunc, msg *message.Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	produced, err := chain(msg)
	if err != nil || len(produced) == 0 {
		return err
	}
	if h.publishTo == "" {
		return ErrNoPublishTopic
	}
	if err := h.app.publisher.Publish(h.publishTo, produced...); err != nil {
		return fmt.Errorf("publish to %s: %w", h.publishTo, err)
	}
	return nil
}

func (a *App) logFailure(d *delivery, err error) {
	attrs := append(d.attrs(), slog.String("topic", d.handler.topic), slog.Any("error", err))
	var pe *PanicError
	if errors.As(err, &pe) {
		attrs = append(attrs, slog.String("stack", string(pe.Stack)))
	}
	if errors.Is(err, context.Canceled) && a.handlerCtx.Err() != nil {
		a.logger.Info("handler interrupted by shutdown; message not acked", attrs...)
		return
	}
	a.logger.Error("handler failed; message nacked", attrs...)
}

// PanicError is a handler panic turned into an error; the same type as the
// Recoverer middleware's.
type PanicError = middleware.PanicError
