package saga

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/cqrs"
	"github.com/millrace/millrace/framework"
	"github.com/millrace/millrace/middleware"
)

// Manager runs the instances of one saga definition in a service: it
// starts them, sends their commands, takes the events that answer them,
// schedules their timeouts and compensates. Make it with [Register] before
// the App starts. It is safe for concurrent use; any number of instances of
// the service may run it against one store.
type Manager[S any] struct {
	def     Definition[S]
	bus     *cqrs.Bus
	app     *framework.App
	store   Store
	topic   string
	group   string
	retries int
	delayer middleware.Delayer

	steps   []*stepInfo[S] // definition order
	byName  map[string]*stepInfo[S]
	stages  [][]*stepInfo[S]
	replies map[string][]*stepInfo[S] // event type -> steps it answers

	prepared sync.Map // topic\x00group -> struct{}
	cache    cache
	stats    struct{ started, transitions, conflicts, ignored atomic.Int64 }
}

// stepInfo is a step of the definition with its place and its replies.
type stepInfo[S any] struct {
	Step[S]
	index, stage int
	// do and undo are the replies of the step's command (Succeeded,
	// Failed) and of its compensation (Compensated, CompensationFailed),
	// by event type: one type may answer both.
	do, undo map[string]replyOf[S]
}

// replyOf is a reply of a step with its kind.
type replyOf[S any] struct {
	kind replyKind
	Reply[S]
}

// answer returns what an event of type typ means for the step in status
// st: a compensation's reply while it compensates, the command's reply
// otherwise.
func (si *stepInfo[S]) answer(typ string, st StepStatus) (replyOf[S], bool) {
	if st == StepCompensating || st == StepCompensationFailed {
		if r, ok := si.undo[typ]; ok {
			return r, true
		}
	}
	if r, ok := si.do[typ]; ok {
		return r, true
	}
	r, ok := si.undo[typ]
	return r, ok
}

type replyKind int

const (
	succeeded replyKind = iota + 1
	failed
	compensated
	compensationFailed
)

// Option configures a [Manager].
type Option func(*options)

type options struct {
	topic   string
	retries int
	handler []framework.HandlerOption
}

// ControlTopic sets the topic of the saga's timeouts and resume requests;
// default "saga.<name>" ([DefaultControlTopic]).
func ControlTopic(topic string) Option { return func(o *options) { o.topic = topic } }

// ConflictRetries sets how often a transition is tried again, at once,
// when another one saved the instance first; default 50. When they are
// spent the handler fails and the middleware retries the message.
func ConflictRetries(n int) Option { return func(o *options) { o.retries = n } }

// HandlerOptions are given to every App handler of the saga (its replies,
// its control topic, its start trigger): [framework.Concurrency], say.
func HandlerOptions(opts ...framework.HandlerOption) Option {
	return func(o *options) { o.handler = append(o.handler, opts...) }
}

// DefaultControlTopic is the control topic of saga name unless
// [ControlTopic] says otherwise: "saga.<name>".
func DefaultControlTopic(name string) string { return "saga." + name }

// Types of the messages on a saga's control topic.
const (
	timeoutType = "saga.Timeout"
	// ResumeType is the message_type of a resume request ([ResumeMessage]).
	ResumeType = "saga.Resume"
)

// Register checks def and registers its saga on bus's App, with its
// instances kept in store: the handlers of the events that answer its
// steps (one subscription per topic, keyed and filtered by saga id), of
// its control topic (timeouts, resume requests), and of its start trigger.
// Call it before the App starts. It returns every problem of def at once.
//
// The saga's handlers run without deduplication: the instance's state is
// what makes a redelivered reply, a duplicate or a late one change nothing.
func Register[S any](bus *cqrs.Bus, def Definition[S], store Store, opts ...Option) (*Manager[S], error) {
	o := options{retries: 50}
	for _, opt := range opts {
		opt(&o)
	}
	var errs []error
	if err := def.check(); err != nil {
		errs = append(errs, err)
	}
	if store == nil {
		errs = append(errs, fmt.Errorf("saga %q: nil Store", def.Name))
	}
	if bus == nil {
		return nil, errors.Join(append(errs, fmt.Errorf("saga %q: nil Bus", def.Name))...)
	}
	if o.retries < 0 {
		errs = append(errs, fmt.Errorf("saga %q: ConflictRetries %d: must be at least 0", def.Name, o.retries))
	}
	if o.topic == "" {
		o.topic = DefaultControlTopic(def.Name)
	}
	app := bus.App()
	m := &Manager[S]{
		def: def, bus: bus, app: app, store: store, topic: o.topic, retries: o.retries,
		group:   app.Config().Service.Name + ".saga." + def.Name,
		byName:  map[string]*stepInfo[S]{},
		replies: map[string][]*stepInfo[S]{},
	}
	timeouts := false
	for i, st := range def.Stages {
		var stage []*stepInfo[S]
		for _, s := range stepsOf(st) {
			si := &stepInfo[S]{Step: s, index: len(m.steps), stage: i, do: map[string]replyOf[S]{}, undo: map[string]replyOf[S]{}}
			for _, k := range []struct {
				to   map[string]replyOf[S]
				kind replyKind
				rs   []Reply[S]
			}{{si.do, succeeded, s.Succeeded}, {si.do, failed, s.Failed}, {si.undo, compensated, s.Compensated}, {si.undo, compensationFailed, s.CompensationFailed}} {
				for _, r := range k.rs {
					k.to[r.name] = replyOf[S]{k.kind, r}
				}
			}
			timeouts = timeouts || s.Timeout > 0 || s.CompensationTimeout > 0
			m.steps = append(m.steps, si)
			m.byName[s.Name] = si
			stage = append(stage, si)
		}
		m.stages = append(m.stages, stage)
	}
	if timeouts {
		d, ok := app.Transport().(middleware.Delayer)
		if !ok {
			errs = append(errs, fmt.Errorf("saga %q: transport %q has no delayed delivery, which step timeouts are scheduled with", def.Name, app.Config().Transport.Kind))
		}
		m.delayer = d
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	m.register(o.handler)
	return m, nil
}

// register registers the saga's App handlers.
func (m *Manager[S]) register(extra []framework.HandlerOption) {
	noDedup := framework.WithMiddleware(func(c *framework.MiddlewareConfig) { c.Dedup.Enabled = false })
	hopts := append([]framework.HandlerOption{noDedup}, extra...)
	// Replies: one subscription per topic, each type once.
	byTopic := map[string][]cqrs.EventHandler{}
	var topics []string
	seen := map[string]bool{}
	for _, si := range m.steps {
		for _, rs := range [][]Reply[S]{si.Succeeded, si.Failed, si.Compensated, si.CompensationFailed} {
			for _, r := range rs {
				m.replies[r.name] = append(m.replies[r.name], si)
				if seen[r.name] {
					continue
				}
				seen[r.name] = true
				topic := r.topic(m.bus)
				if _, ok := byTopic[topic]; !ok {
					topics = append(topics, topic)
				}
				name := r.name
				byTopic[topic] = append(byTopic[topic], r.on(func(ctx context.Context, e any) error {
					return m.onReply(ctx, name, e)
				}))
			}
		}
	}
	for _, topic := range topics {
		cqrs.HandleEvents(m.bus, "saga."+m.def.Name+"."+topic, byTopic[topic], hopts...)
	}
	framework.HandleRaw(m.app, "saga."+m.def.Name, m.topic, m.onControl,
		append([]framework.HandlerOption{framework.Group(m.group), framework.MessageTypes(timeoutType, ResumeType)}, hopts...)...)
	if m.def.Start.register != nil {
		m.def.Start.register(m.bus, "saga."+m.def.Name+".start", func(ctx context.Context, id string, s S) error {
			err := m.Start(ctx, id, s)
			if errors.Is(err, ErrExists) {
				m.ignore(ctx, id, "", "start: the instance exists already (a redelivered start)")
				return nil
			}
			return err
		}, hopts)
	}
}

// Name returns the saga's name.
func (m *Manager[S]) Name() string { return m.def.Name }

// Store returns the store the instances are kept in.
func (m *Manager[S]) Store() Store { return m.store }

// Stats counts what the manager did since it was made.
type Stats struct {
	// Started is how many instances it started.
	Started int64
	// Transitions is how many transitions it stored.
	Transitions int64
	// Conflicts is how many transitions were tried again because another
	// one saved the instance first.
	Conflicts int64
	// Ignored is how many messages changed nothing: duplicates, late
	// replies, replies to finished instances, timeouts of answered steps.
	Ignored int64
}

// Stats returns the manager's counts.
func (m *Manager[S]) Stats() Stats {
	return Stats{
		Started: m.stats.started.Load(), Transitions: m.stats.transitions.Load(),
		Conflicts: m.stats.conflicts.Load(), Ignored: m.stats.ignored.Load(),
	}
}

// Limits of a saga's name and an instance's id, in bytes, that every
// store keeps whole: [Register] refuses a longer name, [Manager.Start] a
// longer id.
const (
	MaxNameLength = 100
	MaxIDLength   = 200
)

// Start starts the instance id with state s: it stores it and sends the
// commands of its first stage, together through the outbox on SQL stores.
// [MemoryStore] stores, then publishes: not atomically (a crash between
// loses the commands). It returns [ErrExists] if the instance exists. Called in a
// handler, the instance's first commands inherit the handled message's
// correlation id.
func (m *Manager[S]) Start(ctx context.Context, id string, s S) error {
	if id == "" {
		return fmt.Errorf("saga %q: start: empty id", m.def.Name)
	}
	if len(id) > MaxIDLength {
		return fmt.Errorf("saga %q: start: id %.40q... is %d bytes, more than %d", m.def.Name, id, len(id), MaxIDLength)
	}
	now := time.Now().UTC()
	in := &Instance{Saga: m.def.Name, ID: id, Status: Running, Created: now, Updated: now}
	for _, si := range m.steps {
		in.Steps = append(in.Steps, StepRecord{Name: si.Name})
	}
	t := &txn[S]{m: m, in: in, state: s, cause: framework.Message(ctx), now: now}
	t.record("", "started", "")
	t.enterStage(0)
	if t.err != nil {
		return t.err
	}
	if err := m.commit(ctx, t, 0); err != nil {
		return err
	}
	m.stats.started.Add(1)
	return nil
}

// Get returns instance id's state and its record (status, steps, history).
func (m *Manager[S]) Get(ctx context.Context, id string) (S, *Instance, error) {
	var s S
	in, err := m.store.Load(ctx, m.def.Name, id)
	if err != nil {
		return s, nil, fmt.Errorf("saga %q: get %s: %w", m.def.Name, id, err)
	}
	if err := json.Unmarshal(in.State, &s); err != nil {
		return s, nil, fmt.Errorf("saga %q: get %s: decode state: %w", m.def.Name, id, err)
	}
	return s, in, nil
}

// List returns the saga's instances in status ("" for all), oldest first,
// at most limit (0: all).
func (m *Manager[S]) List(ctx context.Context, status Status, limit int) ([]*Instance, error) {
	return m.store.List(ctx, m.def.Name, status, limit)
}

// ErrNotStuck is returned by [Manager.Resume] for an instance that does
// not need attention.
var ErrNotStuck = errors.New("saga: the instance does not need attention")

// Resume sends the failed compensation of instance id again, after an
// operator fixed its cause: the instance compensates on from there. It
// returns [ErrNotStuck] if the instance is not [NeedsAttention]. After a
// CompensationFailed event the command is sent with a new message id, so
// the participant's deduplication does not take it for the failed one;
// after a CompensationTimeout (no answer) it is sent with the id of the
// unanswered attempt, so that the participant applies it once even if that
// attempt reaches it too. Resume and replaying the compensating command
// from the poison queue (dead letters) are alternatives: use one.
func (m *Manager[S]) Resume(ctx context.Context, id string) error {
	return m.transition(ctx, id, func(t *txn[S]) error { return t.resume() })
}

// ResumeMessage returns the request, to publish on the saga's control
// topic (see [DefaultControlTopic]), that makes the running service resume
// instance id of saga name, as [Manager.Resume] does: for tools that have
// the transport but not the saga's types (cmd/saga).
func ResumeMessage(name, id string) *message.Message {
	msg := message.NewMessage(deterministicID(name, id, "resume", time.Now().UTC().Format(time.RFC3339Nano)), nil)
	msg.Metadata.Set(millrace.MetadataType, ResumeType)
	msg.Metadata.Set(millrace.MetadataSagaName, name)
	msg.Metadata.Set(millrace.MetadataSagaID, id)
	msg.Metadata.Set(millrace.MetadataPartitionKey, id)
	return msg
}

// onReply handles an event of type typ that may answer one of the saga's
// steps.
func (m *Manager[S]) onReply(ctx context.Context, typ string, e any) error {
	msg := framework.Message(ctx)
	md := msg.Metadata
	id := md.Get(millrace.MetadataSagaID)
	if id == "" || (md.Get(millrace.MetadataSagaName) != "" && md.Get(millrace.MetadataSagaName) != m.def.Name) {
		return nil // not one of this saga's
	}
	step := md.Get(millrace.MetadataSagaStep)
	err := m.transition(ctx, id, func(t *txn[S]) error { t.reply(typ, step, e); return nil })
	if errors.Is(err, ErrNotFound) {
		m.ignore(ctx, id, step, "reply "+typ+" for an instance that is not stored")
		return nil
	}
	return err
}

// timeoutMsg is the payload of a timeout on the control topic.
type timeoutMsg struct {
	Step    string `json:"step"`
	Undo    bool   `json:"undo,omitempty"`
	Attempt int    `json:"attempt,omitempty"`
}

// onControl handles timeouts and resume requests.
func (m *Manager[S]) onControl(msg *message.Message) ([]*message.Message, error) {
	ctx := msg.Context()
	id := msg.Metadata.Get(millrace.MetadataSagaID)
	if id == "" {
		return nil, millrace.Permanent(fmt.Errorf("saga %q: control message %s has no saga_id", m.def.Name, msg.UUID))
	}
	if name := msg.Metadata.Get(millrace.MetadataSagaName); name != "" && name != m.def.Name {
		// Another saga's, on a control topic they share.
		m.ignore(ctx, id, "", "control message of saga "+name)
		return nil, nil
	}
	var err error
	switch msg.Metadata.Get(millrace.MetadataType) {
	case ResumeType:
		err = m.Resume(ctx, id)
		if errors.Is(err, ErrNotStuck) {
			m.ignore(ctx, id, "", "resume request: "+err.Error())
			return nil, nil
		}
	default:
		var tm timeoutMsg
		if jerr := json.Unmarshal(msg.Payload, &tm); jerr != nil {
			return nil, millrace.Permanent(fmt.Errorf("saga %q: timeout %s: %w", m.def.Name, msg.UUID, jerr))
		}
		err = m.transition(ctx, id, func(t *txn[S]) error { t.timeout(tm); return nil })
	}
	if errors.Is(err, ErrNotFound) {
		m.ignore(ctx, id, "", "control message for an instance that is not stored")
		return nil, nil
	}
	return nil, err
}

// transition loads instance id, lets step change it, and stores it, again
// from the load when another transition stored it first.
func (m *Manager[S]) transition(ctx context.Context, id string, step func(t *txn[S]) error) error {
	cached := true // the first try may use the cache
	for attempt := 0; ; attempt++ {
		var in *Instance
		if cached {
			in = m.cache.get(id)
		}
		fromCache := in != nil
		cached = false
		if in == nil {
			var err error
			if in, err = m.store.Load(ctx, m.def.Name, id); err != nil {
				return fmt.Errorf("saga %q: load %s: %w", m.def.Name, id, err)
			}
		}
		t := &txn[S]{m: m, in: in, cause: framework.Message(ctx), now: time.Now().UTC()}
		if err := json.Unmarshal(in.State, &t.state); err != nil {
			return millrace.Permanent(fmt.Errorf("saga %q: instance %s: decode state: %w", m.def.Name, id, err))
		}
		err := step(t)
		if (err != nil || t.ignored != "") && fromCache {
			// Decide that on the stored instance: another process may
			// have moved it past what this one cached.
			attempt--
			continue
		}
		if err != nil {
			return err
		}
		if t.ignored != "" {
			m.ignore(ctx, id, t.ignoredStep, t.ignored)
			return nil
		}
		if t.err != nil {
			return t.err
		}
		err = m.commit(ctx, t, in.Version)
		if err != nil {
			m.cache.drop(id)
		}
		if errors.Is(err, ErrConflict) && attempt < m.retries {
			m.stats.conflicts.Add(1)
			// Let the winner's replies settle; spread the losers.
			time.Sleep(time.Duration(rand.Int64N(int64(time.Millisecond) * int64(1+min(attempt, 10)))))
			continue
		}
		return err
	}
}

// commit stores t's instance at version expected+1 with what it sends,
// scheduling its timeouts first: a timeout whose transition was then not
// stored finds its step not waiting and changes nothing, while one stored
// without its timeout could wait forever.
func (m *Manager[S]) commit(ctx context.Context, t *txn[S], expected int64) error {
	state, err := json.Marshal(t.state)
	if err != nil {
		return millrace.Permanent(fmt.Errorf("saga %q: instance %s: encode state: %w", m.def.Name, t.in.ID, err))
	}
	t.in.State = state
	t.in.Version = expected + 1
	t.in.Updated = t.now
	for _, tm := range t.timeouts {
		if err := m.schedule(ctx, t.in.ID, tm); err != nil {
			return err
		}
	}
	for _, o := range t.out {
		if err := m.prepare(ctx, o); err != nil {
			return err
		}
		// The envelope from ctx (correlation, causation) now: a store may
		// write the messages in a transaction of its own.
		m.app.Stamp(ctx, o.Msg)
	}
	if err := m.store.Save(ctx, t.in, expected, t.out, m.publish); err != nil {
		return fmt.Errorf("saga %q: save %s: %w", m.def.Name, t.in.ID, err)
	}
	m.cache.put(t.in)
	m.stats.transitions.Add(1)
	return nil
}

// pendingTimeout is a timeout a transition schedules.
type pendingTimeout struct {
	timeoutMsg
	after time.Duration
}

// schedule sends a timeout to the saga's control topic, due after tm.after.
func (m *Manager[S]) schedule(ctx context.Context, id string, tm pendingTimeout) error {
	payload, _ := json.Marshal(tm.timeoutMsg)
	kind := "do"
	if tm.Undo {
		kind = fmt.Sprintf("undo.%d", tm.Attempt)
	}
	msg := message.NewMessage(deterministicID(m.def.Name, id, tm.Step, "timeout."+kind), payload)
	md := msg.Metadata
	md.Set(millrace.MetadataType, timeoutType)
	md.Set(millrace.MetadataContentType, "application/json")
	md.Set(millrace.MetadataSagaName, m.def.Name)
	md.Set(millrace.MetadataSagaID, id)
	md.Set(millrace.MetadataSagaStep, tm.Step)
	md.Set(millrace.MetadataPartitionKey, id)
	m.app.Stamp(ctx, msg)
	if err := m.delayer.Delay(ctx, m.topic, m.group, msg, tm.after); err != nil {
		return fmt.Errorf("saga %q: schedule the timeout of step %s of %s: %w", m.def.Name, tm.Step, id, err)
	}
	return nil
}

// prepare makes the broker keep o's messages for its group, once per
// manager.
func (m *Manager[S]) prepare(ctx context.Context, o Outgoing) error {
	if o.Group == "" {
		return nil
	}
	key := o.Topic + "\x00" + o.Group
	if _, done := m.prepared.Load(key); done {
		return nil
	}
	if err := m.app.Prepare(ctx, o.Topic, o.Group); err != nil {
		return fmt.Errorf("saga %q: prepare %s for %s: %w", m.def.Name, o.Topic, o.Group, err)
	}
	m.prepared.Store(key, struct{}{})
	return nil
}

// publish sends out through the App: in a handler, when it succeeds.
func (m *Manager[S]) publish(ctx context.Context, out []Outgoing) error {
	for _, o := range out {
		if err := m.app.PublishMessage(ctx, o.Topic, o.Msg); err != nil {
			return err
		}
	}
	return nil
}

// ignore logs a message that changed nothing, and counts it.
func (m *Manager[S]) ignore(ctx context.Context, id, step, why string) {
	m.stats.ignored.Add(1)
	log := m.app.Logger()
	attrs := []slog.Attr{slog.String("saga", m.def.Name), slog.String("saga_id", id), slog.String("reason", why)}
	if step != "" {
		attrs = append(attrs, slog.String("step", step))
	}
	if msg := framework.Message(ctx); msg != nil {
		log = framework.Logger(ctx)
		attrs = append(attrs, slog.String("message_type", msg.Metadata.Get(millrace.MetadataType)))
	}
	log.LogAttrs(ctx, slog.LevelInfo, "saga: message ignored", attrs...)
}
