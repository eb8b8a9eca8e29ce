package amqp_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/millrace/millrace/transports/amqp"
	"github.com/millrace/millrace/transports/transporttest"
)

// initQueue declares group's queue on topic without consuming, and deletes
// it and the topic's exchange when the test ends.
func initQueue(t *testing.T, tr *amqp.Transport, topic, group string) error {
	t.Helper()
	deleteLater(t, func() []string { return []string{topic + "." + group} }, func() []string { return []string{topic} })
	sub, err := tr.Subscriber(group)
	if err != nil {
		t.Fatal(err)
	}
	return sub.(message.SubscribeInitializer).SubscribeInitialize(topic)
}

// queueDepth returns how many ready messages queue holds.
func queueDepth(t *testing.T, queue string) int {
	t.Helper()
	conn, err := amqp091.Dial(brokerURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return q.Messages
}

// With exchange_type topic, "#" receives every topic.
func TestTopicExchange_HashReceivesEverything(t *testing.T) {
	exchange := uniqueTopic("exchange")
	tr := openTransport(t, func(c *amqp.Config) {
		c.ExchangeType = amqp.ExchangeTopic
		c.Exchange = exchange
	})
	subs := subscribeGroups(t, tr, "#", nil, uniqueTopic("all"))
	deleteLater(t, func() []string { return nil }, func() []string { return []string{exchange} })
	var ch <-chan *message.Message
	for _, c := range subs {
		ch = c
	}
	want := []string{"orders.placed", "payments.made.eu", "audit"}
	for _, topic := range want {
		if err := tr.Publisher().Publish(topic, newMessage(topic)); err != nil {
			t.Fatal(err)
		}
	}
	for _, topic := range want {
		if got := transporttest.Receive(t, ch, 10*time.Second); string(got.Payload) != topic {
			t.Errorf("got %q, want %q", got.Payload, topic)
		}
	}
}

// On a priority queue a waiting message of higher priority (metadata
// amqp_priority) is delivered first.
func TestQueue_PriorityDeliversHigherFirst(t *testing.T) {
	tr := openTransport(t, func(c *amqp.Config) { c.Queue.MaxPriority = 10 })
	topic := uniqueTopic("priority")
	if err := initQueue(t, tr, topic, "g"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"1", "9", "5"} {
		m := newMessage(p)
		m.Metadata.Set(amqp.MetadataPriority, p)
		if err := tr.Publisher().Publish(topic, m); err != nil {
			t.Fatal(err)
		}
	}
	ch := transporttest.SubscribeGroup(t, tr, "g", topic)
	for _, want := range []string{"9", "5", "1"} {
		if got := transporttest.Receive(t, ch, 10*time.Second); string(got.Payload) != want {
			t.Errorf("got priority %q, want %q", got.Payload, want)
		}
	}

	bad := newMessage("x")
	bad.Metadata.Set(amqp.MetadataPriority, "high")
	if err := tr.Publisher().Publish(topic, bad); err == nil || !strings.Contains(err.Error(), amqp.MetadataPriority) {
		t.Errorf("publish with priority %q: %v, want an error naming %s", "high", err, amqp.MetadataPriority)
	}
}

// Messages that waited longer than message_ttl are dropped.
func TestQueue_MessageTTLDropsOldMessages(t *testing.T) {
	tr := openTransport(t, func(c *amqp.Config) { c.Queue.MessageTTL = 50 * time.Millisecond })
	topic := uniqueTopic("ttl")
	if err := initQueue(t, tr, topic, "g"); err != nil {
		t.Fatal(err)
	}
	if err := tr.Publisher().Publish(topic, newMessage("expires")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for queueDepth(t, topic+".g") > 0 {
		if time.Now().After(deadline) {
			t.Fatal("message not expired after 10s")
		}
		time.Sleep(20 * time.Millisecond) // the broker's clock, not ours
	}
	ch := transporttest.SubscribeGroup(t, tr, "g", topic)
	if err := tr.Publisher().Publish(topic, newMessage("fresh")); err != nil {
		t.Fatal(err)
	}
	if got := transporttest.Receive(t, ch, 10*time.Second); string(got.Payload) != "fresh" {
		t.Errorf("got %q, want only the fresh message", got.Payload)
	}
}

// A full queue drops its oldest message (drop-head) or refuses the new one
// (reject-publish: Publish fails, as confirms are on).
func TestQueue_MaxLengthOverflow(t *testing.T) {
	tests := []struct {
		overflow      string
		wantPublished []bool
		wantKept      []string
	}{
		{amqp.OverflowDropHead, []bool{true, true, true}, []string{"2", "3"}},
		{amqp.OverflowRejectPublish, []bool{true, true, false}, []string{"1", "2"}},
		{amqp.OverflowRejectPublishDLX, []bool{true, true, false}, []string{"1", "2"}},
	}
	for _, tt := range tests {
		t.Run(tt.overflow, func(t *testing.T) {
			tr := openTransport(t, func(c *amqp.Config) {
				c.Queue.MaxLength = 2
				c.Queue.Overflow = tt.overflow
			})
			topic := uniqueTopic("overflow")
			if err := initQueue(t, tr, topic, "g"); err != nil {
				t.Fatal(err)
			}
			for i, p := range []string{"1", "2", "3"} {
				err := tr.Publisher().Publish(topic, newMessage(p))
				if published := err == nil; published != tt.wantPublished[i] {
					t.Errorf("publish %s: %v, want published=%v", p, err, tt.wantPublished[i])
				}
				if err != nil && !errors.Is(err, amqp.ErrNotConfirmed) {
					t.Errorf("publish %s: %v, want ErrNotConfirmed", p, err)
				}
			}
			ch := transporttest.SubscribeGroup(t, tr, "g", topic)
			for _, want := range tt.wantKept {
				if got := transporttest.Receive(t, ch, 10*time.Second); string(got.Payload) != want {
					t.Errorf("got %q, want %q", got.Payload, want)
				}
			}
		})
	}
}

// Subscribing with queue options other than those an existing queue was
// declared with fails with an error naming the queue, the argument and its
// config key.
func TestQueue_ChangedArgumentsNameQueueAndKey(t *testing.T) {
	tests := []struct {
		name          string
		before, after func(*amqp.Config)
		arg, key      string
	}{
		{"priority", func(c *amqp.Config) { c.Queue.MaxPriority = 5 }, func(c *amqp.Config) { c.Queue.MaxPriority = 10 },
			"x-max-priority", "transport.amqp.queue.max_priority"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			topic := uniqueTopic("changed")
			before := openTransport(t, tt.before)
			if err := initQueue(t, before, topic, "g"); err != nil {
				t.Fatal(err)
			}
			after := openTransport(t, tt.after)
			sub, err := after.Subscriber("g")
			if err != nil {
				t.Fatal(err)
			}
			_, err = sub.Subscribe(context.Background(), topic)
			if !errors.Is(err, amqp.ErrQueueArguments) {
				t.Fatalf("got %v, want ErrQueueArguments", err)
			}
			for _, want := range []string{topic + ".g", tt.arg, tt.key} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %q", err, want)
				}
			}
			// Delay declares the group's queue too.
			err = after.Delay(context.Background(), topic, "g", newMessage("d"), 0)
			if !errors.Is(err, amqp.ErrQueueArguments) {
				t.Errorf("Delay: got %v, want ErrQueueArguments", err)
			}
		})
	}
}

// A queue that exists with another classic queue version (declared by a
// broker before 3.10, another client, or an earlier config) is used as it
// is: subscribing and delaying work, and messages flow.
func TestQueue_ExistingVersionIsAdopted(t *testing.T) {
	tests := []struct {
		name          string
		before, after int
		delayFirst    bool // Delay, not Subscribe, meets the queue first
	}{
		{"declared without a version", 0, 2, false},
		{"declared without a version, delay first", 0, 2, true},
		{"declared as version 1", 1, 2, false},
		{"declared as version 2, configured 1", 2, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			topic := uniqueTopic("version")
			before := openTransport(t, func(c *amqp.Config) { c.Queue.Version = tt.before })
			if err := initQueue(t, before, topic, "g"); err != nil {
				t.Fatal(err)
			}
			after := openTransport(t, func(c *amqp.Config) { c.Queue.Version = tt.after })
			var ch <-chan *message.Message
			if !tt.delayFirst {
				ch = transporttest.SubscribeGroup(t, after, "g", topic)
			}
			if err := after.Delay(context.Background(), topic, "g", newMessage("delayed"), 0); err != nil {
				t.Fatalf("Delay: %v", err)
			}
			if tt.delayFirst {
				ch = transporttest.SubscribeGroup(t, after, "g", topic)
			}
			if err := after.Publisher().Publish(topic, newMessage("published")); err != nil {
				t.Fatal(err)
			}
			got := map[string]bool{}
			for range 2 {
				got[string(transporttest.Receive(t, ch, 10*time.Second).Payload)] = true
			}
			if !got["delayed"] || !got["published"] {
				t.Errorf("received %v, want the delayed and the published message", got)
			}
		})
	}
}
