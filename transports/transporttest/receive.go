package transporttest

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/transports"
)

// Subscribe subscribes sub to topic with ctx and returns the messages; it
// fails the test if Subscribe fails.
func Subscribe(t testing.TB, ctx context.Context, sub message.Subscriber, topic string) <-chan *message.Message {
	t.Helper()
	ch, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatalf("subscribe to %s: %v", topic, err)
	}
	return ch
}

// SubscribeGroup subscribes a new subscriber of tr in consumer group group
// to topic until the test ends, and returns the messages. It fails the
// test if Subscriber or Subscribe fails.
func SubscribeGroup(t testing.TB, tr transports.Transport, group, topic string) <-chan *message.Message {
	t.Helper()
	sub, err := tr.Subscriber(group)
	if err != nil {
		t.Fatalf("subscriber of group %s: %v", group, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return Subscribe(t, ctx, sub, topic)
}

// Next returns the next message of ch, not acked. It fails the test if ch
// is closed or no message comes within timeout.
func Next(t testing.TB, ch <-chan *message.Message, timeout time.Duration) *message.Message {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatal("subscription channel closed")
		}
		return m
	case <-timer.C:
		t.Fatalf("no message within %v", timeout)
		return nil
	}
}

// Receive returns the next message of ch, acked: [Next], then Ack.
func Receive(t testing.TB, ch <-chan *message.Message, timeout time.Duration) *message.Message {
	t.Helper()
	m := Next(t, ch, timeout)
	m.Ack()
	return m
}

// ReceiveIDs receives n messages of ch, each within timeout, acks each and
// returns their UUIDs in the order received.
func ReceiveIDs(t testing.TB, ch <-chan *message.Message, n int, timeout time.Duration) []string {
	t.Helper()
	ids := make([]string, 0, n)
	for range n {
		ids = append(ids, Receive(t, ch, timeout).UUID)
	}
	return ids
}

// ExpectNone fails the test if ch delivers a message within wait. A closed
// ch delivers none.
func ExpectNone(t testing.TB, ch <-chan *message.Message, wait time.Duration) {
	t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case m, ok := <-ch:
		if ok {
			t.Fatalf("unexpected message %s (%q)", m.UUID, m.Payload)
		}
	case <-timer.C:
	}
}

// UUIDs returns the UUIDs of msgs, in order.
func UUIDs(msgs []*message.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.UUID
	}
	return out
}
