package kafka_test

import (
	"context"
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/transports"
)

// TestLag_CountsWhatTheGroupHasNotAcked publishes 5 messages to each of two
// partitions; before the group consumes, the lag is everything (initial
// offset oldest) or nothing (newest); after it acks 2 of one partition's,
// that partition's lag is 3.
func TestLag_CountsWhatTheGroupHasNotAcked(t *testing.T) {
	brokers := newCluster(t, 2)
	tr := openTransport(t, testConfig(brokers))
	const topic, group = "lagging", "g"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for _, key := range []string{"a", "b"} {
		for range 5 {
			msg := message.NewMessage(watermill.NewUUID(), nil)
			msg.Metadata.Set(millrace.MetadataPartitionKey, key)
			if err := tr.Publisher().Publish(topic, msg); err != nil {
				t.Fatal(err)
			}
		}
	}
	if lag, err := tr.Lag(ctx, group, topic); err != nil || !maps.Equal(lag, map[int32]int64{0: 5, 1: 5}) {
		t.Fatalf("lag before consuming %v (%v), want 5 on each partition", lag, err)
	}
	newest := testConfig(brokers)
	newest.InitialOffset = "newest"
	if lag, err := openTransport(t, newest).Lag(ctx, group, topic); err != nil || !maps.Equal(lag, map[int32]int64{0: 0, 1: 0}) {
		t.Fatalf("lag with initial_offset newest %v (%v), want 0 on each partition", lag, err)
	}

	sub, err := tr.Subscriber(group)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	// Ack the first two messages of whichever partition delivers first;
	// the partitions are read concurrently, so hold everything else.
	var acked int32 = -1
	for n := 0; n < 2; {
		select {
		case m := <-ch:
			p, _ := partitionOf(m)
			if acked == -1 {
				acked = p
			}
			if p == acked {
				m.Ack()
				n++
			}
		case <-ctx.Done():
			t.Fatal("messages not received")
		}
	}
	want := map[int32]int64{0: 5, 1: 5}
	want[acked] = 3
	// Offsets are committed asynchronously (every second).
	var lag map[int32]int64
	for ctx.Err() == nil {
		if lag, err = tr.Lag(ctx, group, topic); err != nil {
			t.Fatal(err)
		}
		if maps.Equal(lag, want) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("lag %v, want %v", lag, want)
}

func TestLag_Errors(t *testing.T) {
	tr := openTransport(t, testConfig(newCluster(t, 1)))
	ctx := context.Background()
	if _, err := tr.Lag(ctx, "", "t"); err == nil {
		t.Error("empty group: want an error")
	}
	if _, err := tr.Lag(ctx, "g", ""); err == nil {
		t.Error("empty topic: want an error")
	}
	if _, err := tr.Lag(ctx, "g", "no-such-topic"); !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
		t.Errorf("unknown topic: got %v, want ErrUnknownTopicOrPartition", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := tr.Lag(cancelled, "g", "t"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: got %v", err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Lag(ctx, "g", "t"); !errors.Is(err, transports.ErrClosed) {
		t.Errorf("after close: got %v, want ErrClosed", err)
	}
}
