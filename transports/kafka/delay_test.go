package kafka_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/middleware"
	"github.com/millrace/millrace/transports"
	"github.com/millrace/millrace/transports/kafka"
	"github.com/millrace/millrace/transports/transporttest"
)

var _ middleware.Delayer = (*kafka.Transport)(nil)

// TestDelay_DeliversToOneGroupAfterDelay delays a message for group "a" of a
// topic that group "b" also consumes: "a" receives it, not before the delay,
// with its metadata; "b" never does.
func TestDelay_DeliversToOneGroupAfterDelay(t *testing.T) {
	tr := openTransport(t, testConfig(newCluster(t, 2)))
	const topic, delay = "jobs", 1500 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	a, b := transporttest.SubscribeGroup(t, tr, "a", topic), transporttest.SubscribeGroup(t, tr, "b", topic)

	msg := message.NewMessage(watermill.NewUUID(), []byte("work"))
	msg.Metadata.Set(millrace.MetadataPartitionKey, "k1")
	start := time.Now()
	if err := tr.Delay(ctx, topic, "a", msg, delay); err != nil {
		t.Fatal(err)
	}

	select {
	case got := <-a:
		if waited := time.Since(start); waited < delay {
			t.Errorf("delivered after %v, before the delay of %v", waited, delay)
		}
		if got.UUID != msg.UUID || string(got.Payload) != "work" || got.Metadata.Get(millrace.MetadataPartitionKey) != "k1" {
			t.Errorf("got %s %q %v, want the delayed message", got.UUID, got.Payload, got.Metadata)
		}
		if got.Metadata.Get(kafka.MetadataRetryDueAt) == "" {
			t.Errorf("no %s metadata", kafka.MetadataRetryDueAt)
		}
		got.Ack()
	case got := <-b:
		t.Fatalf("group b received %s, delayed for group a only", got.UUID)
	case <-ctx.Done():
		t.Fatal("group a did not receive the delayed message")
	}

	// b reads a topic the message was never written to; a short look
	// confirms nothing arrives (it can only fail if b got the message).
	transporttest.ExpectNone(t, b, 500*time.Millisecond)
}

// TestDelay_Errors covers a delay without group and after Close.
func TestDelay_Errors(t *testing.T) {
	tr := openTransport(t, testConfig(newCluster(t, 1)))
	msg := message.NewMessage(watermill.NewUUID(), nil)
	if err := tr.Delay(context.Background(), "t", "", msg, time.Second); err == nil {
		t.Error("delay without group: want an error")
	}
	transporttest.CheckClosed(t, tr, "t", "g")
}

// A subscriber of group "", which reads without a consumer group, fails
// with ErrClosed too once the transport is closed.
func TestClose_SubscribeWithoutGroupFailsWithErrClosed(t *testing.T) {
	tr := openTransport(t, testConfig(newCluster(t, 1)))
	sub, err := tr.Subscriber("")
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.Subscribe(context.Background(), "t"); !errors.Is(err, transports.ErrClosed) {
		t.Errorf("Subscribe after Close: %v, want an error wrapping transports.ErrClosed", err)
	}
}

// TestDelay_HeldRetryDoesNotBlockTopic holds a retry due in a minute while a
// message published to the topic itself is delivered at once; closing the
// transport then releases the held retry without waiting for it.
func TestDelay_HeldRetryDoesNotBlockTopic(t *testing.T) {
	tr := openTransport(t, testConfig(newCluster(t, 1)))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sub, err := tr.Subscriber("g")
	if err != nil {
		t.Fatal(err)
	}
	ch, err := sub.Subscribe(ctx, "jobs")
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Delay(ctx, "jobs", "g", message.NewMessage("later", nil), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := tr.Publisher().Publish("jobs", message.NewMessage("now", nil)); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-ch:
		if got.UUID != "now" {
			t.Fatalf("got %s, want the undelayed message first", got.UUID)
		}
		got.Ack()
	case <-ctx.Done():
		t.Fatal("the topic's message was not delivered")
	}

	closed := time.Now()
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(closed); d > 20*time.Second {
		t.Errorf("close took %v with a held retry", d)
	}
	for got := range ch {
		t.Errorf("received %s after close", got.UUID)
	}
}
