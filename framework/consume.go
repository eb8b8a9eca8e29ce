package framework

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/middleware"
)

// consume handles the messages of one subscription until the App stops
// taking messages or the subscription ends, then waits for the messages it
// is handling. Without concurrent it handles one message at a time. With
// concurrent (a transports.PartitionedSubscriber's subscription, which hands
// out at most one message per partition at once) several goroutines
// receive from the subscription, so that a message that arrives while
// others are handled is taken at once, and a partition's messages are
// still handled one at a time, in order. There is always one goroutine
// waiting: when the last one waiting receives a message it starts another.
// So there are as many as messages were out at once, plus one, and a
// handler's stack, once grown, serves the next message.
func (a *App) consume(h *handler, chain message.HandlerFunc, ch <-chan *message.Message, concurrent bool) {
	defer a.loopsOf(h).Done()
	defer h.running.Add(-1)
	var ended sync.Once
	if !concurrent {
		a.take(h, chain, ch, &ended, nil)
		return
	}
	p := &takers{take: func(p *takers) { a.take(h, chain, ch, &ended, p) }}
	if h.maxInFlight > 0 {
		p.slots = make(chan struct{}, h.maxInFlight)
	}
	p.start()
	p.wg.Wait()
}

// loopsOf returns the wait group of h's consume loops: ephemeral handlers
// stop after the others (see [App.Stop]).
func (a *App) loopsOf(h *handler) *sync.WaitGroup {
	if h.ephemeral {
		return &a.lateLoops
	}
	return &a.loops
}

// takers are the goroutines that take a concurrent subscription's messages.
type takers struct {
	take    func(*takers)
	wg      sync.WaitGroup
	waiting atomic.Int32  // takers waiting for a message, or about to
	slots   chan struct{} // one per message handled, when capped (max in flight)
}

// start starts a taker.
func (p *takers) start() {
	p.waiting.Add(1)
	p.wg.Go(func() { p.take(p) })
}

// received is called by a taker that received a message: if it was the
// last one waiting, another starts.
func (p *takers) received() {
	if p.waiting.Add(-1) == 0 {
		p.start()
	}
}

// acquire takes a slot for the next message, if messages in flight are
// capped; it reports false when stop closed first.
func (p *takers) acquire(stop <-chan struct{}) bool {
	if p == nil || p.slots == nil {
		return true
	}
	select {
	case p.slots <- struct{}{}:
		return true
	case <-stop:
		return false
	}
}

// release gives back the slot acquire took.
func (p *takers) release() {
	if p != nil && p.slots != nil {
		<-p.slots
	}
}

// take handles messages of ch until the App stops taking messages or ch
// closes; ended reports a subscription that closed by itself once. With
// takers, the goroutine is one of them: it counts as waiting except while
// it handles a message, and, when messages in flight are capped, receives
// only once it holds a slot, so that the subscription keeps the messages
// beyond the cap.
func (a *App) take(h *handler, chain message.HandlerFunc, ch <-chan *message.Message, ended *sync.Once, p *takers) {
	for {
		if !p.acquire(h.stop) {
			return
		}
		select {
		case <-h.stop:
			p.release()
			return
		case msg, ok := <-ch:
			if !ok {
				p.release()
				select {
				case <-a.stopIntake:
				default:
					ended.Do(func() {
						a.failed(fmt.Errorf("handler %q: subscription to %q in group %q ended unexpectedly", h.name, h.topic, h.group))
					})
				}
				return
			}
			select {
			case <-h.stop:
				p.release()
				msg.Nack() // shutting down: leave it to the broker
				return
			default:
			}
			if p == nil {
				a.handle(h, chain, msg)
				continue
			}
			p.received()
			a.handle(h, chain, msg)
			p.release()
			p.waiting.Add(1)
		}
	}
}

// handle runs one message through the handler's middleware chain and acks
// or nacks it. A message of a type the handler does not take is acked
// before the chain.
func (a *App) handle(h *handler, chain message.HandlerFunc, msg *message.Message) {
	hm := h.metrics
	if h.types != nil && !h.takes(msg) {
		msg.Ack()
		if hm != nil {
			hm.received.Inc()
			hm.results[resultSkipped].Inc()
		}
		a.skipped(h, msg)
		return
	}
	a.inFlight.Add(1)
	defer a.inFlight.Add(-1)

	hd := &handling{base: h.base, values: msg.Context(), msg: msg, handler: h}
	ctx, span := a.tracing.startConsume(hd, h, msg)
	msg.SetContext(ctx)

	observed := len(a.observers) > 0 || hm != nil || span != nil
	var start time.Time
	if observed {
		start = time.Now()
	}
	if hm != nil {
		hm.received.Inc()
		hm.inFlight.Inc()
	}
	err := h.run(chain, hd, msg)
	hd.finish()
	if err == nil {
		msg.Ack()
	} else {
		msg.Nack()
		a.logFailure(hd, err)
	}
	if !observed {
		return
	}
	o := Outcome{
		Handler: h.name, Topic: h.topic, Group: h.group, Message: msg, Err: err,
		Handled: err == nil && hd.handled, Disposition: hd.settled,
		HeldBack: err != nil && middleware.HeldBack(hd, err), Duration: time.Since(start),
	}
	if hm != nil {
		hm.inFlight.Dec()
		hm.duration.Observe(o.Duration.Seconds())
		hm.results[o.result()].Inc()
	}
	endConsume(span, o)
	for _, obs := range a.observers {
		obs.MessageHandled(o)
	}
}

// takes reports whether msg is of a type the handler takes: one of its
// types, or of no declared type.
func (h *handler) takes(msg *message.Message) bool {
	got := msg.Metadata[millrace.MetadataType]
	return got == "" || slices.Contains(h.types, got)
}

// skipped reports a message of another type, acked unhandled.
func (a *App) skipped(h *handler, msg *message.Message) {
	if a.logger.Enabled(context.Background(), slog.LevelDebug) {
		a.logger.LogAttrs(context.Background(), slog.LevelDebug, "skipping message of another type",
			slog.String("handler", h.name), slog.String("message_id", msg.UUID),
			slog.String("message_type", msg.Metadata[millrace.MetadataType]), slog.Any("takes", h.types))
	}
	if len(a.observers) > 0 {
		o := Outcome{Handler: h.name, Topic: h.topic, Group: h.group, Message: msg, Skipped: true}
		for _, obs := range a.observers {
			obs.MessageHandled(o)
		}
	}
}

// run calls the chain, turning a panic into an error so that one bad
// message cannot take the process down, and sends messages that middleware
// outside invoke returned, by the same path as the handler's own.
func (h *handler) run(chain message.HandlerFunc, hd *handling, msg *message.Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	produced, err := chain(msg)
	if err != nil || len(produced) == 0 {
		return err
	}
	hd.take(false) // sent by invoke already, or dropped by a failed attempt
	return h.send(hd, msg, produced)
}

func (a *App) logFailure(hd *handling, err error) {
	attrs := append(hd.attrs(), slog.String("topic", hd.handler.topic), slog.Any("error", err))
	var pe *PanicError
	if errors.As(err, &pe) {
		attrs = append(attrs, slog.String("stack", string(pe.Stack)))
	}
	if errors.Is(err, middleware.ErrShuttingDown) {
		a.logger.Info("message handed back to the broker: shutting down", attrs...)
		return
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
