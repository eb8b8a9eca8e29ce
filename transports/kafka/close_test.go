package kafka_test

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
)

// TestSubscriber_AckedRightBeforeCloseIsCommitted acks one message on each
// of four partitions and closes the subscriber at once, as a graceful
// shutdown does: every ack is committed (lag 0), none is delivered again.
func TestSubscriber_AckedRightBeforeCloseIsCommitted(t *testing.T) {
	brokers := newCluster(t, 4)
	tr := openTransport(t, testConfig(brokers))
	const topic, group = "shutdown", "g"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for _, key := range partitionKeys(t, topic, 4) {
		msg := message.NewMessage(watermill.NewUUID(), nil)
		msg.Metadata.Set(millrace.MetadataPartitionKey, key)
		if err := tr.Publisher().Publish(topic, msg); err != nil {
			t.Fatal(err)
		}
	}

	sub, err := tr.Subscriber(group)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	held := make([]*message.Message, 0, 4)
	for len(held) < 4 {
		select {
		case m := <-ch:
			held = append(held, m)
		case <-ctx.Done():
			t.Fatalf("received %d of 4 messages", len(held))
		}
	}
	for _, m := range held {
		m.Ack()
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	lag, err := tr.Lag(ctx, group, topic)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[int32]int64{0: 0, 1: 0, 2: 0, 3: 0}; !maps.Equal(lag, want) {
		t.Fatalf("lag after acking everything and closing: %v, want %v", lag, want)
	}
}
