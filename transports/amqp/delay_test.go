package amqp_test

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/middleware"
	"github.com/millrace/millrace/transports/amqp"
	"github.com/millrace/millrace/transports/transporttest"
)

var _ middleware.Delayer = (*amqp.Transport)(nil)

// subscribeGroups subscribes one subscription per group to topic and
// schedules deletion of everything the test declares on topic.
func subscribeGroups(t *testing.T, tr *amqp.Transport, topic string, delays []string, groups ...string) map[string]<-chan *message.Message {
	t.Helper()
	queues := []string{}
	for _, g := range groups {
		queues = append(queues, topic+"."+g)
		for _, d := range delays {
			queues = append(queues, topic+"."+g+".wait."+d)
		}
	}
	deleteLater(t, func() []string { return queues }, func() []string { return []string{topic} })
	// Stop consuming before the queues are deleted (cleanups run last first).
	t.Cleanup(func() { _ = tr.Close() })

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	out := make(map[string]<-chan *message.Message, len(groups))
	for _, g := range groups {
		sub, err := tr.Subscriber(g)
		if err != nil {
			t.Fatal(err)
		}
		ch, err := sub.Subscribe(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		out[g] = ch
	}
	return out
}

func TestDelay_DeliversToOneGroupAfterDelay(t *testing.T) {
	tr := openTransport(t, nil)
	topic := uniqueTopic("delay")
	const delay = 300 * time.Millisecond
	subs := subscribeGroups(t, tr, topic, []string{"300"}, "a", "b")

	msg := message.NewMessage(watermill.NewUUID(), []byte(`{"n":1}`))
	msg.Metadata.Set(millrace.MetadataCorrelationID, "corr-1")
	msg.Metadata.Set(millrace.MetadataRetryRounds, "2")

	start := time.Now()
	if err := tr.Delay(context.Background(), topic, "a", msg, delay); err != nil {
		t.Fatalf("Delay: %v", err)
	}
	got := transporttest.Receive(t, subs["a"], 10*time.Second)
	if elapsed := time.Since(start); elapsed < delay {
		t.Errorf("delivered after %v, want at least %v", elapsed, delay)
	}
	if got.UUID != msg.UUID || string(got.Payload) != string(msg.Payload) {
		t.Errorf("got %s %q, want %s %q", got.UUID, got.Payload, msg.UUID, msg.Payload)
	}
	for _, k := range []string{millrace.MetadataCorrelationID, millrace.MetadataRetryRounds} {
		if got.Metadata.Get(k) != msg.Metadata.Get(k) {
			t.Errorf("metadata %s = %q, want %q", k, got.Metadata.Get(k), msg.Metadata.Get(k))
		}
	}
	if v, ok := got.Metadata["x-death"]; ok {
		t.Errorf("broker's x-death header leaked into metadata: %q", v)
	}

	// Group b must not have received the delayed message: it would be in b's
	// queue ahead of a marker published now, so b's first message must be
	// the marker.
	marker := message.NewMessage(watermill.NewUUID(), []byte("marker"))
	if err := tr.Publisher().Publish(topic, marker); err != nil {
		t.Fatal(err)
	}
	if first := transporttest.Receive(t, subs["b"], 10*time.Second); first.UUID != marker.UUID {
		t.Errorf("group b received %s first, want only the marker %s", first.UUID, marker.UUID)
	}
	if first := transporttest.Receive(t, subs["a"], 10*time.Second); first.UUID != marker.UUID {
		t.Errorf("group a received %s, want the marker %s", first.UUID, marker.UUID)
	}
}

func TestDelay_ShortDelayIsNotHeldBehindLongerOne(t *testing.T) {
	tr := openTransport(t, nil)
	topic := uniqueTopic("delay-order")
	subs := subscribeGroups(t, tr, topic, []string{"200", "60000"}, "g")

	long := message.NewMessage(watermill.NewUUID(), []byte("long"))
	short := message.NewMessage(watermill.NewUUID(), []byte("short"))
	if err := tr.Delay(context.Background(), topic, "g", long, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := tr.Delay(context.Background(), topic, "g", short, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if got := transporttest.Receive(t, subs["g"], 10*time.Second); got.UUID != short.UUID {
		t.Errorf("got %q first, want the short-delayed message", got.Payload)
	}
}

func TestDelay_ZeroDelayEnqueuesAtOnce(t *testing.T) {
	tr := openTransport(t, nil)
	topic := uniqueTopic("delay-zero")
	subs := subscribeGroups(t, tr, topic, nil, "g")

	msg := message.NewMessage(watermill.NewUUID(), []byte("now"))
	if err := tr.Delay(context.Background(), topic, "g", msg, 0); err != nil {
		t.Fatal(err)
	}
	if got := transporttest.Receive(t, subs["g"], 10*time.Second); got.UUID != msg.UUID {
		t.Errorf("got %s, want %s", got.UUID, msg.UUID)
	}
}

func TestClose_IsIdempotentAndStopsEverything(t *testing.T) {
	tr := openTransport(t, nil)
	topic := uniqueTopic("close")
	subscribeGroups(t, tr, topic, []string{"1000"}, "g")
	// Open the delay connection so Close has it to close.
	if err := tr.Delay(context.Background(), topic, "g", message.NewMessage(watermill.NewUUID(), nil), time.Second); err != nil {
		t.Fatal(err)
	}
	transporttest.CheckClosed(t, tr, topic, "g")
}

// A delayed copy never expires: not when it is enqueued at once into a
// queue nobody consumes yet, whatever MetadataExpiration the message had.
func TestDelay_CopyIgnoresTheMessagesExpiration(t *testing.T) {
	tr := openTransport(t, nil)
	topic := uniqueTopic("delay")
	queue := topic + ".g"
	deleteLater(t, func() []string { return []string{queue} }, func() []string { return []string{topic} })
	msg := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
	msg.Metadata.Set(amqp.MetadataExpiration, "1ms")
	if err := tr.Delay(context.Background(), topic, "g", msg, 0); err != nil {
		t.Fatal(err)
	}
	// Give a 1ms expiration ample time to pass; a copy that expired would
	// be gone from the queue.
	time.Sleep(200 * time.Millisecond)
	if n := queueDepth(t, queue); n != 1 {
		t.Fatalf("%s holds %d messages 200ms after a copy with expiration 1ms was enqueued, want 1", queue, n)
	}
}
