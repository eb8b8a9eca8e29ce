package amqp_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/transports"
	"github.com/millrace/millrace/transports/amqp"
	"github.com/millrace/millrace/transports/transporttest"
)

// TestBacklog_CountsTheQueuesReadyMessages publishes 7 messages to a topic
// with a group's queue and a retained queue and consumes none: both hold
// 7; after the group consumed and acked 3 and closed its subscription, its
// queue holds 4 and the retained one still 7; a group that never
// subscribed, and a topic nobody declared, hold none.
func TestBacklog_CountsTheQueuesReadyMessages(t *testing.T) {
	const n = 7
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topic := uniqueTopic("backlog")
	queue := topic + ".g"
	deleteLater(t, func() []string { return []string{queue, amqp.RetainedQueue(topic)} }, func() []string { return []string{topic} })
	tr := openTransport(t, nil)
	sub, err := tr.Subscriber("g")
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.(message.SubscribeInitializer).SubscribeInitialize(topic); err != nil {
		t.Fatal(err)
	}
	if err := tr.Retain(ctx, topic); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := tr.Publisher().Publish(topic, newMessage(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	backlog := func(topic, group string) int64 {
		t.Helper()
		got, err := tr.Backlog(ctx, topic, group)
		if err != nil {
			t.Fatalf("Backlog(%s, %q): %v", topic, group, err)
		}
		return got
	}
	for _, tt := range []struct {
		topic, group string
		want         int64
	}{
		{topic, "g", n},
		{topic, "", n},
		{topic, "never-subscribed", 0},
		{uniqueTopic("nobody"), "g", 0},
		{uniqueTopic("nobody"), "", 0},
	} {
		if got := backlog(tt.topic, tt.group); got != tt.want {
			t.Errorf("Backlog(%s, %q) = %d, want %d", tt.topic, tt.group, got, tt.want)
		}
	}

	msgs, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	transporttest.ReceiveIDs(t, msgs, 3, 10*time.Second)
	if err := sub.Close(); err != nil { // sends the acks; requeues the prefetched rest
		t.Fatal(err)
	}
	if got := backlog(topic, "g"); got != n-3 {
		t.Errorf("Backlog after 3 acked = %d, want %d", got, n-3)
	}
	if got := backlog(topic, ""); got != n {
		t.Errorf("retained Backlog after the group consumed = %d, want %d", got, n)
	}
}

// CheckHealth is nil on an open transport and an error wrapping
// transports.ErrClosed after Close, as Backlog's; an ended context ends
// both at once.
func TestCheckHealth_OpenAndClosed(t *testing.T) {
	tr := openTransport(t, nil)
	if err := tr.CheckHealth(t.Context()); err != nil {
		t.Fatalf("CheckHealth of an open transport: %v", err)
	}
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	if err := tr.CheckHealth(ended); !errors.Is(err, context.Canceled) {
		t.Errorf("CheckHealth with an ended context: %v, want context.Canceled", err)
	}
	if _, err := tr.Backlog(ended, "t", "g"); !errors.Is(err, context.Canceled) {
		t.Errorf("Backlog with an ended context: %v, want context.Canceled", err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tr.CheckHealth(t.Context()); !errors.Is(err, transports.ErrClosed) {
		t.Errorf("CheckHealth after Close: %v, want an error wrapping transports.ErrClosed", err)
	}
	if _, err := tr.Backlog(t.Context(), "t", "g"); !errors.Is(err, transports.ErrClosed) {
		t.Errorf("Backlog after Close: %v, want an error wrapping transports.ErrClosed", err)
	}
}
