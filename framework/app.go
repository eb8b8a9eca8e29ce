package framework

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/middleware"
	"github.com/millrace/millrace/transports"
)

// App is a message-driven service: handlers registered on topics, run on the
// transport that config chooses, with graceful shutdown.
//
// The App consumes with its own small loop over Watermill subscribers rather
// than Watermill's message.Router, because the router cannot do what a
// production consumer needs: it has no per-handler concurrency (watermill
// issues #374, #547, #558), it closes a handler's publisher while the
// handler may still be running (#446), its Close blocks for the whole
// timeout when it never ran (#697), and it cancels handler contexts as soon
// as shutdown begins. Handlers and middleware are Watermill's own types
// (message.HandlerFunc, message.HandlerMiddleware), so Watermill middleware
// plugs in unchanged.
//
// Delivery is at least once: a message is acked only after its handler (and
// its middleware) returned nil and the messages it published were sent;
// otherwise it is nacked and the transport delivers it again.
type App struct {
	cfg       *Config
	instance  string
	logger    *slog.Logger
	transport transports.Transport
	publisher message.Publisher
	codec     Codec

	middleware []message.HandlerMiddleware
	observers  []Observer
	metrics    *metrics // nil when observability.metrics is off
	tracing    *tracing
	server     *server // the observability listener, nil without observability.addr
	handlers   []*handler
	workers    []worker
	names      map[string]bool
	regErrs    []error

	mu          sync.Mutex
	state       state
	subscribers []message.Subscriber
	stores      map[string]middleware.DedupStore // shared dedup stores, by settings
	breakers    map[string]*middleware.Breaker
	throttles   map[string]*middleware.Throttle // shared by throttle.name
	closers     []func() error                  // store connections, closed last
	degraded    map[string]string               // what runs degraded, by store id (see Degraded)
	background  sync.WaitGroup                  // goroutines of the App\'s own, ended by subCtx

	handlerCtx     context.Context // parent of every handler's context; cancelled after the drain timeout
	cancelHandlers context.CancelFunc
	subCtx         context.Context // subscriptions; cancelled after the drain
	cancelSubs     context.CancelFunc
	stopIntake     chan struct{}  // closed when shutdown begins: handlers and workers stop taking work
	stopLate       chan struct{}  // closed once those drained: ephemeral handlers (replies) stop too
	lateOnce       sync.Once      // closes stopLate
	loops          sync.WaitGroup // consume loops of the handlers, and the workers
	lateLoops      sync.WaitGroup // consume loops of the ephemeral handlers
	inFlight       atomic.Int64
	fatal          chan error
	started        chan struct{}
	startErr       error // what Start returned, set before started closes
	stopped        chan struct{}
	stopErr        error
}

type state int

const (
	stateNew state = iota
	stateRunning
	stateStopping
	stateStopped
)

// New returns an App that consumes from and publishes to tr, configured by
// cfg (see Load) and logging to logger, which gets the service name as an
// attribute. The App owns tr from now on: Stop closes it.
func New(cfg *Config, logger *slog.Logger, tr transports.Transport) (*App, error) {
	switch {
	case cfg == nil:
		return nil, errors.New("framework.New: nil config")
	case tr == nil:
		return nil, errors.New("framework.New: nil transport")
	case logger == nil:
		return nil, errors.New("framework.New: nil logger")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &App{
		cfg:        cfg,
		instance:   watermill.NewShortUUID(),
		logger:     logger.With(slog.String("service", cfg.Service.Name)),
		transport:  tr,
		publisher:  tr.Publisher(),
		codec:      JSON{},
		names:      map[string]bool{},
		stopIntake: make(chan struct{}),
		stopLate:   make(chan struct{}),
		fatal:      make(chan error, 1),
		started:    make(chan struct{}),
		stopped:    make(chan struct{}),
	}
	a.handlerCtx, a.cancelHandlers = context.WithCancel(context.Background())
	a.subCtx, a.cancelSubs = context.WithCancel(context.Background())
	if cfg.Observability.Metrics {
		a.metrics = newMetrics(a)
	}
	t, err := newTracing(context.Background(), cfg)
	if err != nil {
		return nil, err
	}
	a.tracing = t
	return a, nil
}

// InstanceID returns the id of this App, unique to the process run: what
// tells two instances of one service apart (request/reply uses it to route
// replies to the instance that asked).
func (a *App) InstanceID() string { return a.instance }

// RegistrationError records a problem that a layer above the App (cqrs,
// saga) found while registering with it, such as a command with two
// handlers. Start and Run report it with the App's own registration
// problems and do not start. Call it before Start.
func (a *App) RegistrationError(err error) {
	if err != nil {
		a.regErrs = append(a.regErrs, err)
	}
}

// Config returns the App's [Config]. It must not be modified.
func (a *App) Config() *Config { return a.cfg }

// Logger returns the App's logger, which carries the service name.
func (a *App) Logger() *slog.Logger { return a.logger }

// Transport returns the transport the App runs on, for what the App does
// not wrap (a tool's own subscriber, a transport's own methods). The App
// owns it: Stop closes it, callers must not.
func (a *App) Transport() transports.Transport { return a.transport }

// Publisher returns the transport's publisher, for raw Watermill messages.
// Messages sent through it bypass the envelope; prefer [App.Publish] and
// [App.PublishMessage].
func (a *App) Publisher() message.Publisher { return a.publisher }

// SetCodec replaces the JSON codec for everything the App publishes and
// decodes ([Codec]). Call it before registering handlers.
func (a *App) SetCodec(c Codec) { a.codec = c }

// Use adds Watermill middleware around every handler, inside the default
// stack (see [MiddlewareConfig]) and outside the handler's own ([Use]);
// the first one given is the outermost. Call it before Start.
func (a *App) Use(m ...message.HandlerMiddleware) { a.middleware = append(a.middleware, m...) }

// Observe adds an [Observer] that is told about every handled message. Call it
// before Start.
func (a *App) Observe(o Observer) { a.observers = append(a.observers, o) }

func (a *App) register(name, topic string, fn message.HandlerFunc, opts []HandlerOption) {
	h := &handler{app: a, name: name, topic: topic, concurrency: a.cfg.Handlers.Concurrency, maxInFlight: a.cfg.Handlers.MaxInFlight, fn: fn, mw: a.cfg.Middleware}
	h.mw.DelayedRetry.Delays = slices.Clone(h.mw.DelayedRetry.Delays)
	if name != "" {
		h.group = a.cfg.Service.Name + "." + name
	}
	for _, opt := range opts {
		opt(h)
	}
	if h.ephemeral {
		h.concurrency = 1
		h.mw.DelayedRetry.Enabled = false
		if name != "" {
			h.group = a.cfg.Service.Name + "." + name + "." + a.instance
		}
	}
	h.stop = a.stopIntake
	if h.ephemeral {
		// An ephemeral subscription carries what the other handlers
		// wait for (the replies to their requests): it takes messages
		// until they have drained.
		h.stop = a.stopLate
	}
	h.consumer = millrace.Consumer{Service: a.cfg.Service.Name, Handler: name, Topic: topic, Group: h.group, Stopping: h.stop}
	h.base = millrace.WithConsumer(a.handlerCtx, &h.consumer)
	var problems []string
	switch {
	case name == "":
		problems = append(problems, "empty handler name")
	case a.names[name]:
		problems = append(problems, "a handler with this name is already registered")
	}
	if topic == "" {
		problems = append(problems, "empty topic")
	}
	if fn == nil {
		problems = append(problems, "nil handler function")
	}
	if h.concurrency < 1 || h.concurrency > MaxConcurrency {
		problems = append(problems, fmt.Sprintf("concurrency %d: must be between 1 and %d", h.concurrency, MaxConcurrency))
	}
	if h.maxInFlight < 0 || h.maxInFlight > MaxConcurrency {
		problems = append(problems, fmt.Sprintf("max in flight %d: must be between 0 (one per partition) and %d", h.maxInFlight, MaxConcurrency))
	}
	if h.group == "" && name != "" {
		problems = append(problems, "empty consumer group")
	}
	for _, p := range problems {
		a.regErrs = append(a.regErrs, fmt.Errorf("handler %q (topic %q): %s", name, topic, p))
	}
	a.names[name] = true
	a.handlers = append(a.handlers, h)
}

// worker is a function that runs alongside the handlers (see Go).
type worker struct {
	name string
	fn   func(ctx context.Context) error
}

// Go runs fn alongside the handlers, from Start until shutdown, as the
// outbox relay runs: its ctx ends when shutdown begins (no new work), and
// Stop waits for fn to return, like it waits for in-flight handlers
// (shutdown.timeout, then shutdown.cancel_grace), before it closes the
// transport, which fn may publish through until then. An error fn returns
// before shutdown, other than ctx's, stops the App as a subscription that
// ended does: Run returns it. Call Go before Start.
func (a *App) Go(name string, fn func(ctx context.Context) error) {
	a.workers = append(a.workers, worker{name: name, fn: fn})
}

// Start subscribes every handler and starts consuming; it returns once all
// subscriptions are open, so a message published after Start returns is
// handled. ctx bounds only the start itself. Registration errors, and a
// transport that cannot subscribe, are returned (after undoing what was
// started). Either way [App.Started] is closed when it returns.
func (a *App) Start(ctx context.Context) (err error) {
	a.mu.Lock()
	if a.state != stateNew {
		a.mu.Unlock()
		return errors.New("framework: App.Start called twice or after Stop")
	}
	a.state = stateRunning
	a.mu.Unlock()
	defer func() {
		a.startErr = err
		close(a.started)
	}()

	if err := errors.Join(a.regErrs...); err != nil {
		return errors.Join(err, a.Stop(context.Background()))
	}
	for _, h := range a.handlers {
		if err := a.startHandler(ctx, h); err != nil {
			return errors.Join(fmt.Errorf("start handler %q: %w", h.name, err), a.Stop(context.Background()))
		}
	}
	a.startWorkers()
	if a.cfg.Observability.Addr != "" {
		srv, err := a.serve()
		if err != nil {
			return errors.Join(err, a.Stop(context.Background()))
		}
		a.mu.Lock()
		a.server = srv
		a.mu.Unlock()
	}
	a.logger.Debug("effective configuration", slog.Any("config", a.cfg))
	a.logger.Info("service started",
		slog.Int("handlers", len(a.handlers)),
		slog.String("transport", a.cfg.Transport.Kind))
	return nil
}

func (a *App) startHandler(ctx context.Context, h *handler) error {
	h.metrics = a.metrics.forHandler(h.name)
	a.mu.Lock() // stack registers breakers, throttles and stores on a
	defaults, err := a.stack(h)
	a.mu.Unlock()
	if err != nil {
		return err
	}
	if r, ok := a.transport.(transports.Retainer); ok && h.mw.Poison.Enabled {
		// On a broker that drops messages of unbound topics, the poison
		// topic must keep what it is sent before anyone reads it.
		topic := a.poisonTopic(h.mw.Poison)
		if err := r.Retain(ctx, topic); err != nil {
			return fmt.Errorf("retain poison topic %q: %w", topic, err)
		}
	}
	chain := message.HandlerFunc(h.invoke)
	for _, layer := range [][]message.HandlerMiddleware{h.middleware, a.middleware, defaults} {
		for i := len(layer) - 1; i >= 0; i-- {
			chain = layer[i](chain)
		}
	}
	if es, ok := a.transport.(transports.EphemeralSubscriber); ok && h.ephemeral {
		ch, err := es.SubscribeEphemeral(a.subCtx, h.topic)
		if err != nil {
			return fmt.Errorf("subscribe to %q for this instance: %w", h.topic, err)
		}
		a.loopsOf(h).Add(1)
		h.running.Add(1)
		go a.consume(h, chain, ch, false)
		a.logger.Debug("handler started", slog.String("handler", h.name), slog.String("topic", h.topic), slog.Bool("ephemeral", true))
		return nil
	}
	sub, err := a.transport.Subscriber(h.group)
	if err != nil {
		return fmt.Errorf("subscriber for group %q: %w", h.group, err)
	}
	a.mu.Lock()
	a.subscribers = append(a.subscribers, sub)
	a.mu.Unlock()
	_, concurrent := sub.(transports.PartitionedSubscriber)
	for i := 0; i < h.concurrency; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		ch, err := sub.Subscribe(a.subCtx, h.topic)
		if err != nil {
			return fmt.Errorf("subscribe to %q: %w", h.topic, err)
		}
		a.loopsOf(h).Add(1)
		h.running.Add(1)
		go a.consume(h, chain, ch, concurrent)
	}
	a.logger.Info("handler started",
		slog.String("handler", h.name), slog.String("topic", h.topic),
		slog.String("group", h.group), slog.Int("concurrency", h.concurrency))
	return nil
}

// Run starts the App and blocks until ctx is done or the process receives
// SIGINT or SIGTERM, then shuts down gracefully (see Stop) and returns. It
// returns nil after a clean shutdown, and an error if the App could not start,
// a subscription ended unexpectedly (the broker went away for good), or the
// shutdown had to abandon handlers. A second signal during shutdown cancels
// the handlers' contexts at once instead of waiting for the drain timeout.
func (a *App) Run(ctx context.Context) error {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)

	if err := a.Start(ctx); err != nil {
		return err
	}
	var runErr error
	select {
	case <-ctx.Done():
		a.logger.Info("shutting down", slog.String("reason", context.Cause(ctx).Error()))
	case sig := <-sigs:
		a.logger.Info("shutting down", slog.String("reason", "signal "+sig.String()))
	case runErr = <-a.fatal:
		a.logger.Error("shutting down", slog.Any("error", runErr))
	}
	go func() {
		select {
		case sig := <-sigs:
			a.logger.Warn("second signal: cancelling in-flight handlers now", slog.String("signal", sig.String()))
			a.cancelHandlers()
		case <-a.stopped:
		}
	}()
	return errors.Join(runErr, a.Stop(context.Background()))
}

// Stop shuts the App down gracefully, like http.Server.Shutdown:
//
//  1. it stops taking new messages (a message received but not yet handed
//     to a handler is nacked, so the broker delivers it again);
//  2. it waits for in-flight handlers to finish, up to shutdown.timeout (or
//     until ctx is done), without cancelling their contexts; handlers
//     registered with [Ephemeral] (such as the replies of cqrs requests)
//     keep taking messages until the others and the workers of [App.Go]
//     have finished, so a handler waiting for a reply gets it, and then
//     stop as well;
//  3. if some are still running, it cancels their contexts and waits up to
//     shutdown.cancel_grace more; a handler still running after that is
//     abandoned, and its message, never acked, is delivered again later;
//  4. it closes the subscribers, then the transport with its publisher —
//     only now, so no handler ever publishes through a closed publisher.
//
// No message is acked unless its handler finished successfully. Stop on an
// App that never started just closes the transport. Calling Stop again
// waits for the first call and returns its result.
func (a *App) Stop(ctx context.Context) error {
	a.mu.Lock()
	switch a.state {
	case stateStopping, stateStopped:
		a.mu.Unlock()
		<-a.stopped
		return a.stopErr
	case stateNew:
		a.state = stateStopped
		a.mu.Unlock()
		a.stopErr = errors.Join(a.closeAll(), a.closeObservability())
		close(a.stopped)
		return a.stopErr
	}
	a.state = stateStopping
	a.mu.Unlock()

	close(a.stopIntake)
	drained := make(chan struct{})
	go func() {
		a.loops.Wait()
		a.stopEphemeral()
		a.lateLoops.Wait()
		close(drained)
	}()

	var errs []error
	if !a.wait(ctx, drained, a.cfg.Shutdown.Timeout) {
		a.logger.Warn("drain timeout passed: cancelling in-flight handlers",
			slog.Int64("in_flight", a.inFlight.Load()), slog.Duration("timeout", a.cfg.Shutdown.Timeout))
		a.cancelHandlers()
		if !a.wait(context.Background(), drained, a.cfg.Shutdown.CancelGrace) {
			err := fmt.Errorf("shutdown: %d handlers still running %s after their contexts were cancelled; abandoned (their messages were not acked)",
				a.inFlight.Load(), a.cfg.Shutdown.CancelGrace)
			a.logger.Error("abandoning handlers", slog.Any("error", err))
			errs = append(errs, err)
		}
	}
	a.stopEphemeral()
	errs = append(errs, a.closeAll(), a.closeObservability())
	a.cancelHandlers()

	a.mu.Lock()
	a.state = stateStopped
	a.mu.Unlock()
	a.stopErr = errors.Join(errs...)
	close(a.stopped)
	a.logger.Info("service stopped")
	return a.stopErr
}

// stopEphemeral makes the ephemeral handlers stop taking messages.
func (a *App) stopEphemeral() { a.lateOnce.Do(func() { close(a.stopLate) }) }

// wait reports whether done closed within d (and before ctx was done).
func (a *App) wait(ctx context.Context, done <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

// closeAll closes the subscribers, ends the subscriptions' contexts, and
// closes the transport (which closes its publisher).
//
// Subscribers are closed before their contexts end: a subscriber may still
// be settling the last acks on the broker (an SQL offset update in the
// transaction of its batch, a Kafka offset commit), work that cancelling
// its context would abort, so the acked message would come again.
// Subscriber.Close ends subscriptions on its own and waits for that work.
// The App's own background work ends with the subscriptions' contexts, and
// the dedup stores' connections are closed last.
func (a *App) closeAll() error {
	var errs []error
	a.mu.Lock()
	subs := a.subscribers
	a.subscribers = nil
	a.mu.Unlock()
	for _, s := range subs {
		if err := s.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close subscriber: %w", err))
		}
	}
	if err := a.transport.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close transport: %w", err))
	}
	a.cancelSubs()
	a.background.Wait()
	a.mu.Lock()
	closers := a.closers
	a.closers = nil
	a.mu.Unlock()
	for _, c := range closers {
		if err := c(); err != nil {
			errs = append(errs, fmt.Errorf("close dedup store: %w", err))
		}
	}
	return errors.Join(errs...)
}

// failed reports an error that ends Run.
func (a *App) failed(err error) {
	select {
	case a.fatal <- err:
	default: // one is enough to stop
	}
}

// startWorkers starts the functions given to Go; their context ends when
// shutdown begins.
func (a *App) startWorkers() {
	if len(a.workers) == 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	context.AfterFunc(a.handlerCtx, cancel) // abandoned with the handlers at the latest
	go func() {
		<-a.stopIntake
		cancel()
	}()
	for _, w := range a.workers {
		a.loops.Add(1)
		go func() {
			defer a.loops.Done()
			err := w.fn(ctx)
			if err != nil && ctx.Err() == nil {
				a.failed(fmt.Errorf("%s: %w", w.name, err))
			} else if err != nil && !errors.Is(err, context.Canceled) {
				a.logger.Error("worker ended with an error during shutdown", slog.String("worker", w.name), slog.Any("error", err))
			}
		}()
	}
}

// Prepare makes the broker keep what is published to topic for consumer
// group from now on, also before any consumer of the group has started: on
// RabbitMQ it declares the group's queue and binds it; transports that keep
// topics as logs (memory, Kafka, SQL) may record the group. Senders of
// point-to-point messages (commands) call it so that nothing they send is
// dropped for want of a consumer.
func (a *App) Prepare(ctx context.Context, topic, group string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	sub, err := a.transport.Subscriber(group)
	if err != nil {
		return fmt.Errorf("prepare group %q of %q: %w", group, topic, err)
	}
	si, ok := sub.(message.SubscribeInitializer)
	if !ok {
		return sub.Close()
	}
	// SubscribeInitialize takes no context: ctx bounds the wait for it, and
	// a call that outlives ctx closes the subscriber when it returns.
	done := make(chan error, 1)
	go func() {
		err := si.SubscribeInitialize(topic)
		_ = sub.Close()
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("prepare group %q of %q: %w", group, topic, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("prepare group %q of %q: %w", group, topic, context.Cause(ctx))
	}
}

// Started returns a channel that is closed once Start (or Run) has
// returned: if it succeeded ([App.StartErr] is nil) every subscription is
// open, and from then on published messages reach the handlers on every
// transport. It is closed when Start fails too, so nobody waits for an App
// that will never run; StartErr then says why.
func (a *App) Started() <-chan struct{} { return a.started }

// StartErr returns the error Start returned, once [App.Started] is closed;
// nil before, and after a successful start.
func (a *App) StartErr() error {
	select {
	case <-a.started:
		return a.startErr
	default:
		return nil
	}
}

// Codec returns the codec the App encodes and decodes payloads with.
func (a *App) Codec() Codec { return a.codec }
