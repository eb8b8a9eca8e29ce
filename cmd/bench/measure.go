package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/framework"
	"github.com/millrace/millrace/transports/amqp"
	"github.com/millrace/millrace/transports/memory"
)

// order is the payload every measurement publishes: about 100 bytes of
// JSON, like a small domain event.
type order struct {
	OrderID  string `json:"order_id"`
	Customer string `json:"customer"`
	Cents    int    `json:"cents"`
	Note     string `json:"note"`
}

func newOrder(i int) order {
	return order{OrderID: fmt.Sprintf("order-%08d", i), Customer: "customer-0042", Cents: 1000 + i%5000, Note: "leave at the door"}
}

// measure runs the raw and the millrace side on t.
func (t *target) measure(ctx context.Context, o options) ([]row, error) {
	var rows []row
	var errs []error
	add := func(side string, pub, con float64, err error) {
		rows = append(rows, row{transport: t.name, side: side, publish: pub, consume: con})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", side, err))
		}
	}
	pub, con, err := t.raw(ctx, o, 1, false)
	add("raw watermill defaults, 1/publish", pub, con, err)
	pub, con, err = t.raw(ctx, o, 1, true)
	add("raw watermill defaults, 1/publish, millrace's envelope", pub, con, err)
	if o.batch > 1 {
		pub, con, err := t.raw(ctx, o, o.batch, false)
		add(fmt.Sprintf("raw watermill defaults, %d/publish", o.batch), pub, con, err)
	}
	if c, ok := t.cfg.Transport.Section().(*amqp.Config); ok {
		pub, con, err := amqpCeiling(ctx, c, o, o.batch)
		add(fmt.Sprintf("amqp091-go alone (broker ceiling), %d/publish, ack per %d", o.batch, ceilingAckEvery), pub, con, err)
	}
	pub, con, err = t.millrace(ctx, o, 1)
	add("millrace defaults + full stack, 1/publish", pub, con, err)
	if o.batch > 1 {
		pub, con, err := t.millrace(ctx, o, o.batch)
		add(fmt.Sprintf("millrace defaults + full stack, %d/publish", o.batch), pub, con, err)
	}
	return rows, errors.Join(errs...)
}

// raw publishes o.n messages with the raw adapter, batch per call, and
// drains them with a Watermill Router without middleware. With envelope, each
// message carries the metadata millrace's envelope adds (type, correlation
// id, publisher, time, content type), so that the rates compare the same
// messages.
func (t *target) raw(ctx context.Context, o options, batch int, envelope bool) (pubRate, conRate float64, err error) {
	topic, group := fresh("bench.raw"), "bench-raw"
	pub, sub, err := t.rawPubSub(group)
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = sub.Close(); _ = pub.Close(); t.drop(topic, group, true) }()
	if err := t.initGroup(sub, topic); err != nil {
		return 0, 0, err
	}
	payload, _ := json.Marshal(newOrder(0))
	pubRate, err = publishAll(o, batch, func(first, count int) error {
		msgs := make([]*message.Message, count)
		for i := range msgs {
			msgs[i] = message.NewMessage(watermill.NewUUID(), payload)
			if envelope {
				setEnvelope(msgs[i])
			}
		}
		return pub.Publish(topic, msgs...)
	})
	if err != nil {
		return pubRate, 0, err
	}

	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, t.wlog)
	if err != nil {
		return pubRate, 0, err
	}
	c := newCounter(o.n)
	router.AddConsumerHandler("sink", topic, sub, func(*message.Message) error { c.hit(); return nil })
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- router.Run(runCtx) }()
	err = c.wait(o.timeout)
	cancel()
	err = errors.Join(err, <-done)
	return pubRate, c.rate(), err
}

// millrace publishes o.n messages through an App on the configured
// transport, batch per call, and drains them with a typed no-op handler behind
// the default middleware stack.
func (t *target) millrace(ctx context.Context, o options, batch int) (pubRate, conRate float64, err error) {
	topic, group := fresh("bench.millrace"), "bench-millrace"
	tr, closeTransport, err := framework.OpenTransport(ctx, t.cfg, t.reg, t.logger)
	if err != nil {
		return 0, 0, err
	}
	defer func() { closeTransport(); t.drop(topic, group, false) }()
	app, err := framework.New(t.cfg, t.logger, tr)
	if err != nil {
		return 0, 0, err
	}
	c := newCounter(o.n)
	framework.Handle(app, "sink", topic, func(context.Context, order) error { return nil }, framework.Group(group))
	app.Observe(framework.ObserverFunc(func(out framework.Outcome) {
		if out.Handled && out.Err == nil {
			c.hit()
		}
	}))
	if t.name == "amqp" || t.name == "memory" {
		sub, err := tr.Subscriber(group)
		if err != nil {
			return 0, 0, err
		}
		if err := t.initGroup(sub, topic); err != nil {
			return 0, 0, err
		}
	}
	typeName := framework.TypeName(order{})
	payload, _ := json.Marshal(newOrder(0))
	pubRate, err = publishAll(o, batch, func(first, count int) error {
		if count == 1 {
			return app.Publish(ctx, topic, newOrder(first))
		}
		// Like the raw side, the batched rows publish one encoded payload.
		msgs := make([]*message.Message, count)
		for i := range msgs {
			msgs[i] = message.NewMessage(watermill.NewUUID(), payload)
			msgs[i].Metadata.Set(millrace.MetadataType, typeName)
		}
		return app.PublishMessage(ctx, topic, msgs...)
	})
	if err != nil {
		return pubRate, 0, err
	}
	if err := app.Start(ctx); err != nil {
		return pubRate, 0, err
	}
	err = c.wait(o.timeout)
	return pubRate, c.rate(), errors.Join(err, app.Stop(ctx))
}

// setEnvelope sets the metadata that App.Publish stamps on a message.
func setEnvelope(m *message.Message) {
	m.Metadata.Set(millrace.MetadataType, framework.TypeName(order{}))
	m.Metadata.Set(millrace.MetadataContentType, framework.JSON{}.ContentType())
	m.Metadata.Set(millrace.MetadataCorrelationID, m.UUID)
	m.Metadata.Set(millrace.MetadataPublishedBy, "bench")
	m.Metadata.Set(millrace.MetadataPublishedAt, time.Now().UTC().Format(time.RFC3339Nano))
}

// initGroup makes sure group's queue exists before messages are published,
// on brokers where a group receives only what is published after it
// subscribed (RabbitMQ), or only the last memory.Config.Retention messages
// published before (millrace's memory broker, 10,000 by default, fewer than
// a measurement's 20,000). Logs (Kafka, SQL) need nothing, nor does raw
// Watermill's GoChannel, which keeps every message (Persistent).
func (t *target) initGroup(sub message.Subscriber, topic string) error {
	switch t.name {
	case "amqp":
		if si, ok := sub.(message.SubscribeInitializer); ok {
			return si.SubscribeInitialize(topic)
		}
	case "memory":
		ms, ok := sub.(*memory.Subscriber)
		if !ok {
			break // raw Watermill's GoChannel
		}
		// A subscription creates the group, which keeps collecting
		// messages after it ends.
		ctx, cancel := context.WithCancel(context.Background())
		_, err := ms.Subscribe(ctx, topic)
		cancel()
		return errors.Join(err, ms.Close())
	}
	return nil
}

// publishAll publishes o.n messages from o.publishers goroutines, batch per
// call of publish(first, count), and returns messages per second.
func publishAll(o options, batch int, publish func(first, count int) error) (float64, error) {
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	start := time.Now()
	for range o.publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				first := int(next.Add(int64(batch))) - batch
				if first >= o.n {
					return
				}
				if err := publish(first, min(batch, o.n-first)); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	return float64(o.n) / elapsed.Seconds(), nil
}

// counter counts handled messages and times the drain from the first to
// the n-th.
type counter struct {
	n           int64
	count       atomic.Int64
	first, last atomic.Int64 // unix nanoseconds
	done        chan struct{}
}

func newCounter(n int) *counter { return &counter{n: int64(n), done: make(chan struct{})} }

func (c *counter) hit() {
	now := time.Now().UnixNano()
	k := c.count.Add(1)
	c.first.CompareAndSwap(0, now)
	if k == c.n {
		c.last.Store(now)
		close(c.done)
	}
}

func (c *counter) wait(timeout time.Duration) error {
	select {
	case <-c.done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("consumed %d of %d messages in %v", c.count.Load(), c.n, timeout)
	}
}

// rate is messages per second between the first and the last message, 0
// if the drain did not complete.
func (c *counter) rate() float64 {
	first, last := c.first.Load(), c.last.Load()
	if last == 0 || last <= first {
		return 0
	}
	return float64(c.n-1) / time.Duration(last-first).Seconds()
}

func fresh(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}
