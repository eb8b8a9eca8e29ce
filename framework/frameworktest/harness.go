package frameworktest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/framework"
	"github.com/millrace/millrace/middleware"
	"github.com/millrace/millrace/transports"
)

// DefaultTimeout bounds every Wait: a test that waits longer fails with a
// description of what it waited for and what happened instead. Inside a
// synctest bubble it is fake time, so a wait that cannot succeed fails at
// once instead of after ten real seconds.
const DefaultTimeout = 10 * time.Second

// Harness runs one App on the in-memory transport inside a test and records
// every message published and every message each handler finished with.
type Harness struct {
	// App is the application under test. Register handlers on it between
	// New and Start.
	App *framework.App

	t       testing.TB
	timeout time.Duration
	bubble  bool
	rec     *recorder
	stopped atomic.Bool
}

// Option adjusts a Harness.
type Option func(*options)

type options struct {
	yaml    string
	env     []string
	timeout time.Duration
	fromEnv bool
}

// WithConfig gives the App this YAML config (as in a service's config file).
// The transport is the in-memory one: transport.kind is ignored (unless
// [FromEnvironment]), but the transport.memory section is honoured.
func WithConfig(yaml string) Option { return func(o *options) { o.yaml = yaml } }

// WithEnv gives the App these environment overrides ("MILLRACE_X=v"), instead
// of none: the process environment is read only with [FromEnvironment].
func WithEnv(env ...string) Option { return func(o *options) { o.env = env } }

// FromEnvironment lets the process environment configure the App too: its
// MILLRACE_ variables apply after those of WithEnv, and transport.kind is
// honoured, so that
//
//	MILLRACE_TRANSPORT_KIND=amqp MILLRACE_TRANSPORT_AMQP_URL=amqp://guest:guest@localhost:5672/ go test ./...
//
// runs the same handler tests on RabbitMQ (or any transport the
// environment names) instead of the in-memory one. With no MILLRACE_
// variables set the App runs on the in-memory transport as usual. A real
// broker cannot live in a synctest bubble: a harness on another transport
// must be made outside one and runs on real time (Advance is refused), so
// write such tests with WaitUntil and the Wait helpers, not with Advance.
// On a broker that outlives the test, give each test its own topics.
func FromEnvironment() Option { return func(o *options) { o.fromEnv = true } }

// WithTimeout replaces DefaultTimeout.
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// New builds an App on a fresh in-memory broker (or the transport the
// environment names, with [FromEnvironment]), with config defaults unless
// WithConfig or WithEnv say otherwise, and logs going to the test's output.
// The App is stopped when the test ends. Register handlers on h.App, then
// call Start.
//
// Call New inside synctest.Test to control time: the memory broker's
// redelivery delays, middleware backoff and handler timeouts then run on the
// bubble's fake clock, Advance moves it, and Wait* advance it as far as
// needed instead of sleeping.
func New(t testing.TB, opts ...Option) *Harness {
	t.Helper()
	o := options{timeout: DefaultTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	reg, err := framework.Transports()
	if err != nil {
		t.Fatalf("frameworktest: %v", err)
	}
	env := o.env
	if o.fromEnv {
		for _, kv := range os.Environ() {
			if strings.HasPrefix(kv, framework.EnvPrefix) && !strings.HasPrefix(kv, framework.EnvConfigPath+"=") {
				env = append(env, kv)
			}
		}
	}
	cfg, err := framework.Parse([]byte(o.yaml), env, reg)
	if err != nil {
		t.Fatalf("frameworktest: config: %v", err)
	}
	bubble := inBubble()
	switch {
	case !o.fromEnv:
		cfg.Transport.Kind = framework.DefaultTransportKind
	case bubble && cfg.Transport.Kind != framework.DefaultTransportKind:
		t.Fatalf("frameworktest: transport %q is a real broker, which cannot run inside a synctest bubble: make this harness outside synctest.Test (it then runs on real time)", cfg.Transport.Kind)
	}
	logger := framework.NewLogger(cfg, t.Output())
	tr, err := reg.Open(context.Background(), cfg.Transport.Kind, cfg.Transport.Section(), transports.Deps{Logger: logger})
	if err != nil {
		t.Fatalf("frameworktest: open %s transport: %v", cfg.Transport.Kind, err)
	}
	rec := newRecorder()
	app, err := framework.New(cfg, logger, &recordingTransport{Transport: tr, pub: &recordingPublisher{Publisher: tr.Publisher(), rec: rec}})
	if err != nil {
		_ = tr.Close()
		t.Fatalf("frameworktest: %v", err)
	}
	app.Observe(rec)
	h := &Harness{App: app, t: t, timeout: o.timeout, bubble: bubble, rec: rec}
	t.Cleanup(h.cleanup)
	return h
}

// inBubble reports whether the caller runs inside a synctest bubble.
func inBubble() (yes bool) {
	defer func() {
		if recover() != nil {
			yes = false
		}
	}()
	synctest.Wait()
	return true
}

// Start starts the App; the test fails if it cannot start.
func (h *Harness) Start() {
	h.t.Helper()
	if err := h.App.Start(context.Background()); err != nil {
		h.t.Fatalf("frameworktest: start: %v", err)
	}
}

// Stop shuts the App down gracefully, as SIGTERM would, and returns what
// App.Stop returned. A test that does not call it gets it at its end, and
// fails if the shutdown reports an error.
func (h *Harness) Stop() error {
	h.stopped.Store(true)
	return h.App.Stop(context.Background())
}

func (h *Harness) cleanup() {
	if h.stopped.Load() {
		return
	}
	if err := h.App.Stop(context.Background()); err != nil {
		h.t.Errorf("frameworktest: stop at the end of the test: %v", err)
	}
}

// Publish publishes v to topic as a service outside the App would, with the
// App's codec and envelope; the test fails if publishing fails.
func (h *Harness) Publish(topic string, v any, opts ...framework.PublishOption) {
	h.t.Helper()
	if err := h.App.Publish(context.Background(), topic, v, opts...); err != nil {
		h.t.Fatalf("frameworktest: publish to %s: %v", topic, err)
	}
}

// Advance moves the fake clock forward by d and returns when every goroutine
// of the App is idle again, so timers due within d have fired and their
// effects are visible. It needs a synctest bubble (see New).
func (h *Harness) Advance(d time.Duration) {
	h.t.Helper()
	if !h.bubble {
		h.t.Fatalf("frameworktest: Advance needs the harness to be created inside synctest.Test")
	}
	time.Sleep(d)
	synctest.Wait()
}

// WaitUntil blocks until cond returns true, re-checking it whenever a message
// is published or handled. It fails the test after the harness timeout, with
// what in the message and a summary of what the App did.
func (h *Harness) WaitUntil(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.NewTimer(h.timeout)
	defer deadline.Stop()
	for {
		changed := h.rec.changes()
		if cond() {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			h.t.Fatalf("frameworktest: waited %s until %s; it did not happen.\n%s", h.timeout, what, h.rec.summary())
		}
	}
}

// Messages returns the messages published to topic so far, in publish order.
func (h *Harness) Messages(topic string) []*message.Message {
	return h.rec.messages(topic)
}

// Outcomes returns every delivery the handler finished with, successful or
// not, in order.
func (h *Harness) Outcomes(handler string) []framework.Outcome {
	return h.rec.outcomes(handler, func(framework.Outcome) bool { return true })
}

// Failures returns the deliveries the handler failed (and nacked), in order.
func (h *Harness) Failures(handler string) []framework.Outcome {
	return h.rec.outcomes(handler, func(o framework.Outcome) bool { return o.Err != nil })
}

// WaitFailed waits until the handler has failed n deliveries and returns
// them.
func (h *Harness) WaitFailed(handler string, n int) []framework.Outcome {
	h.t.Helper()
	var got []framework.Outcome
	h.WaitUntil(fmt.Sprintf("handler %q failed %d deliveries", handler, n), func() bool {
		got = h.Failures(handler)
		return len(got) >= n
	})
	return got
}

// FailPublishes makes every publish to topic fail with err from now on, as
// if the broker refused it; nil err lets publishes through again. It tests
// what a handler or middleware does when publishing fails.
func (h *Harness) FailPublishes(topic string, err error) {
	h.rec.mu.Lock()
	defer h.rec.mu.Unlock()
	if h.rec.failing == nil {
		h.rec.failing = map[string]error{}
	}
	if err == nil {
		delete(h.rec.failing, topic)
		return
	}
	h.rec.failing[topic] = err
}

// PoisonTopic returns the App's poison topic.
func (h *Harness) PoisonTopic() string {
	if t := h.App.Config().Middleware.Poison.Topic; t != "" {
		return t
	}
	return middleware.TopicFor(h.App.Config().Service.Name)
}

// Poisoned returns the messages the handler sent to the poison queue, with
// their poison_* metadata, in order.
func (h *Harness) Poisoned(handler string) []*message.Message {
	var out []*message.Message
	for _, m := range h.rec.messages(h.PoisonTopic()) {
		if m.Metadata.Get(millrace.MetadataPoisonHandler) == handler {
			out = append(out, m)
		}
	}
	return out
}

// WaitPoisoned waits until the handler has sent n messages to the poison
// queue and returns them.
func (h *Harness) WaitPoisoned(handler string, n int) []*message.Message {
	h.t.Helper()
	var got []*message.Message
	h.WaitUntil(fmt.Sprintf("handler %q poisoned %d messages", handler, n), func() bool {
		got = h.Poisoned(handler)
		return len(got) >= n
	})
	return got
}

// Published returns the messages of type T published to topic, decoded with
// the App's codec, in publish order. Messages of other types are left out.
func Published[T any](h *Harness, topic string) []T {
	h.t.Helper()
	return decodeAll[T](h, h.rec.messages(topic), "published to "+topic)
}

// Consumed returns the messages of type T that the handler handled
// successfully, decoded, in the order it finished them. Messages acked
// without the handler succeeding (poisoned, scheduled for a delayed retry,
// skipped as duplicates) are not among them.
func Consumed[T any](h *Harness, handler string) []T {
	h.t.Helper()
	var msgs []*message.Message
	for _, o := range h.rec.outcomes(handler, func(o framework.Outcome) bool { return o.Handled }) {
		msgs = append(msgs, o.Message)
	}
	return decodeAll[T](h, msgs, "consumed by "+handler)
}

// WaitPublished waits until at least n messages of type T have been
// published to topic and returns all of them.
func WaitPublished[T any](h *Harness, topic string, n int) []T {
	h.t.Helper()
	var got []T
	h.WaitUntil(fmt.Sprintf("%d %s messages were published to %q", n, framework.TypeNameOf[T](), topic), func() bool {
		got = Published[T](h, topic)
		return len(got) >= n
	})
	return got
}

// WaitConsumed waits until the handler has successfully handled at least n
// messages of type T and returns all of them.
func WaitConsumed[T any](h *Harness, handler string, n int) []T {
	h.t.Helper()
	var got []T
	h.WaitUntil(fmt.Sprintf("handler %q consumed %d %s messages", handler, n, framework.TypeNameOf[T]()), func() bool {
		got = Consumed[T](h, handler)
		return len(got) >= n
	})
	return got
}

// AnyPublished reports whether a message of type T matching match was
// published to topic (match nil matches any).
func AnyPublished[T any](h *Harness, topic string, match func(T) bool) bool {
	h.t.Helper()
	for _, v := range Published[T](h, topic) {
		if match == nil || match(v) {
			return true
		}
	}
	return false
}

func decodeAll[T any](h *Harness, msgs []*message.Message, where string) []T {
	h.t.Helper()
	want := framework.TypeNameOf[T]()
	out := make([]T, 0, len(msgs))
	for _, m := range msgs {
		if got := m.Metadata.Get(millrace.MetadataType); got != "" && want != "" && got != want {
			continue
		}
		var v T
		if err := h.App.Codec().Unmarshal(m.Payload, &v); err != nil {
			h.t.Fatalf("frameworktest: message %s %s does not decode into %s: %v", m.UUID, where, want, err)
		}
		out = append(out, v)
	}
	return out
}

// recorder keeps what the App did, and wakes waiters when it changes.
type recorder struct {
	mu        sync.Mutex
	changed   chan struct{}
	published []published
	handled   []framework.Outcome
	failing   map[string]error // topic -> injected publish error
}

type published struct {
	topic string
	msg   *message.Message
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{})} }

// changes returns a channel that is closed at the next change.
func (r *recorder) changes() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

func (r *recorder) notify() {
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *recorder) MessageHandled(o framework.Outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.handled = append(r.handled, o)
	r.notify()
}

func (r *recorder) recordPublished(topic string, msgs []*message.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range msgs {
		r.published = append(r.published, published{topic: topic, msg: m.Copy()})
	}
	r.notify()
}

func (r *recorder) messages(topic string) []*message.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*message.Message
	for _, p := range r.published {
		if p.topic == topic {
			out = append(out, p.msg)
		}
	}
	return out
}

func (r *recorder) outcomes(handler string, keep func(framework.Outcome) bool) []framework.Outcome {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []framework.Outcome
	for _, o := range r.handled {
		if o.Handler == handler && keep(o) {
			out = append(out, o)
		}
	}
	return out
}

// summary describes what happened, for a failed wait.
func (r *recorder) summary() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "published (%d):\n", len(r.published))
	for _, p := range r.published {
		fmt.Fprintf(&b, "  %s: %s %s %s\n", p.topic, p.msg.UUID, p.msg.Metadata.Get(millrace.MetadataType), p.msg.Payload)
	}
	fmt.Fprintf(&b, "handled (%d):\n", len(r.handled))
	for _, o := range r.handled {
		result := "handled"
		switch {
		case o.Err != nil:
			result = "failed: " + o.Err.Error()
		case !o.Handled:
			result = "acked without success (poisoned, delayed or duplicate)"
		}
		fmt.Fprintf(&b, "  %s: %s %s\n", o.Handler, o.Message.UUID, result)
	}
	return b.String()
}

// recordingTransport is the memory transport with a publisher that records.
type recordingTransport struct {
	transports.Transport
	pub *recordingPublisher
}

func (t *recordingTransport) Publisher() message.Publisher { return t.pub }

// SubscribeEphemeral forwards subscriptions of one instance alone.
func (t *recordingTransport) SubscribeEphemeral(ctx context.Context, topic string) (<-chan *message.Message, error) {
	es, ok := t.Transport.(transports.EphemeralSubscriber)
	if !ok {
		return nil, fmt.Errorf("frameworktest: transport %T has no subscriptions for one instance", t.Transport)
	}
	return es.SubscribeEphemeral(ctx, topic)
}

// Retain forwards keeping a topic's messages, on a broker that needs it;
// elsewhere there is nothing to do.
func (t *recordingTransport) Retain(ctx context.Context, topic string) error {
	if r, ok := t.Transport.(transports.Retainer); ok {
		return r.Retain(ctx, topic)
	}
	return nil
}

// Browse forwards reading a topic's retained messages (the poison queue).
func (t *recordingTransport) Browse(ctx context.Context, topic string) ([]*message.Message, error) {
	b, ok := t.Transport.(interface {
		Browse(context.Context, string) ([]*message.Message, error)
	})
	if !ok {
		return nil, fmt.Errorf("frameworktest: transport %T cannot browse topics", t.Transport)
	}
	return b.Browse(ctx, topic)
}

// Delay forwards delayed redelivery to the transport.
func (t *recordingTransport) Delay(ctx context.Context, topic, group string, msg *message.Message, delay time.Duration) error {
	d, ok := t.Transport.(middleware.Delayer)
	if !ok {
		return fmt.Errorf("frameworktest: transport %T cannot delay messages", t.Transport)
	}
	return d.Delay(ctx, topic, group, msg, delay)
}

type recordingPublisher struct {
	message.Publisher
	rec *recorder
}

func (p *recordingPublisher) Publish(topic string, msgs ...*message.Message) error {
	p.rec.mu.Lock()
	injected := p.rec.failing[topic]
	p.rec.mu.Unlock()
	if injected != nil {
		return injected
	}
	if err := p.Publisher.Publish(topic, msgs...); err != nil {
		return err
	}
	p.rec.recordPublished(topic, msgs)
	return nil
}

// T returns the test the harness belongs to, for helpers built on it.
func (h *Harness) T() testing.TB { return h.t }
