package cqrs_test

import (
	"context"
	"io"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/cqrs"
	"github.com/millrace/millrace/framework"
	"github.com/millrace/millrace/transports"
	"github.com/millrace/millrace/transports/memory"
)

// Messages of the tests: an order service's commands, events and queries.
type PlaceOrder struct {
	ID    string `json:"id"`
	Total int    `json:"total"`
}

func (PlaceOrder) MessageType() string  { return "orders.PlaceOrder" }
func (PlaceOrder) MessageVersion() int  { return 1 }
func (c PlaceOrder) EntityID() string   { return c.ID }
func (PlaceOrder) MessageTopic() string { return "orders.commands" }

type OrderPlaced struct {
	ID string `json:"id"`
}

func (OrderPlaced) MessageType() string  { return "orders.OrderPlaced" }
func (e OrderPlaced) EntityID() string   { return e.ID }
func (OrderPlaced) MessageTopic() string { return "orders.events" }

type OrderPaid struct {
	ID  string `json:"id"`
	Seq int    `json:"seq"`
}

func (OrderPaid) MessageType() string  { return "orders.OrderPaid" }
func (e OrderPaid) EntityID() string   { return e.ID }
func (OrderPaid) MessageTopic() string { return "orders.events" }

type OrderCancelled struct {
	ID string `json:"id"`
}

func (OrderCancelled) MessageType() string  { return "orders.OrderCancelled" }
func (e OrderCancelled) EntityID() string   { return e.ID }
func (OrderCancelled) MessageTopic() string { return "orders.events" }

type ReserveTable struct {
	ID     string `json:"id"`
	Guests int    `json:"guests"`
}

type TableReserved struct {
	Table string `json:"table"`
}

type GetOrder struct {
	ID string `json:"id"`
}

type OrderView struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// noStack switches off the parts of the middleware stack that would retry,
// so that a failure shows at once.
const noStack = `
middleware:
  retry: {max_attempts: 1}
  delayed_retry: {enabled: false}
  breaker: {enabled: false}
`

// service is one instance of a service on broker b: an App built from
// config as a service builds it, with a bus.
func service(t *testing.T, b *memory.Broker, name, yaml string, opts ...cqrs.Option) (*framework.App, *cqrs.Bus) {
	t.Helper()
	return serviceOn(t, b, name, yaml, nil, opts...)
}

// serviceOn is service with the transport wrapped by wrap (if not nil).
func serviceOn(t *testing.T, b *memory.Broker, name, yaml string, wrap func(transports.Transport) transports.Transport, opts ...cqrs.Option) (*framework.App, *cqrs.Bus) {
	t.Helper()
	reg, err := transports.NewRegistry(memory.KindOn(b))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := framework.Parse([]byte(yaml), []string{"MILLRACE_SERVICE_NAME=" + name}, reg)
	if err != nil {
		t.Fatal(err)
	}
	logger := framework.NewLogger(cfg, io.Discard)
	tr, cleanup, err := framework.OpenTransport(context.Background(), cfg, reg, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	if wrap != nil {
		tr = wrap(tr)
	}
	app, err := framework.New(cfg, logger, tr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = app.Stop(context.Background()) })
	return app, cqrs.New(app, opts...)
}

// broker is a memory broker shared by the services of a test.
func broker(t *testing.T) *memory.Broker {
	t.Helper()
	b, err := memory.New(*memory.DefaultConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func start(t *testing.T, app *framework.App) {
	t.Helper()
	if err := app.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// outcomes records what an App's handlers finished with.
type outcomes struct {
	mu  sync.Mutex
	all []framework.Outcome
}

func record(app *framework.App) *outcomes {
	o := &outcomes{}
	app.Observe(framework.ObserverFunc(func(out framework.Outcome) {
		o.mu.Lock()
		o.all = append(o.all, out)
		o.mu.Unlock()
	}))
	return o
}

func (o *outcomes) of(handler string) []framework.Outcome {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []framework.Outcome
	for _, x := range o.all {
		if x.Handler == handler {
			out = append(out, x)
		}
	}
	return out
}

// browse returns the messages retained on topic.
func browse(t *testing.T, b *memory.Broker, topic string) []*message.Message {
	t.Helper()
	msgs, err := b.Browse(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

// newRaw is a message with payload and options, built by hand.
func newRaw(payload string, opts ...framework.PublishOption) *message.Message {
	m := message.NewMessage("raw-"+payload, []byte(payload))
	for _, o := range opts {
		o(m)
	}
	return m
}

func startApp(t *testing.T, app *framework.App) { start(t, app) }

// subscriptionCounting counts the subscriptions opened on each topic.
type subscriptionCounting struct {
	transports.Transport
	mu     sync.Mutex
	counts map[string]int
}

func countSubscriptions(tr transports.Transport) *subscriptionCounting {
	return &subscriptionCounting{Transport: tr, counts: map[string]int{}}
}

func (c *subscriptionCounting) Subscriber(group string) (message.Subscriber, error) {
	s, err := c.Transport.Subscriber(group)
	if err != nil {
		return nil, err
	}
	return countingSubscriber{Subscriber: s, c: c}, nil
}

func (c *subscriptionCounting) SubscribeEphemeral(ctx context.Context, topic string) (<-chan *message.Message, error) {
	c.count(topic)
	return c.Transport.(transports.EphemeralSubscriber).SubscribeEphemeral(ctx, topic)
}

func (c *subscriptionCounting) count(topic string) {
	c.mu.Lock()
	c.counts[topic]++
	c.mu.Unlock()
}

func (c *subscriptionCounting) of(topic string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[topic]
}

type countingSubscriber struct {
	message.Subscriber
	c *subscriptionCounting
}

func (s countingSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.c.count(topic)
	return s.Subscriber.Subscribe(ctx, topic)
}
