package kafka_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/middleware/dlq"
	"github.com/millrace/millrace/transports"
	"github.com/millrace/millrace/transports/kafka"
)

var _ dlq.Browser = (*kafka.Transport)(nil)

// TestBrowse_ReadsEveryPartitionInPublishOrder publishes to three partitions
// (and a foreign record), browses, and checks that Browse returns them all in
// publish order, leaves later messages out, moves no group and creates no
// topic.
func TestBrowse_ReadsEveryPartitionInPublishOrder(t *testing.T) {
	brokers := newCluster(t, 3)
	tr := openTransport(t, testConfig(brokers))
	const topic = "poison"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	var want []string
	publish := func(id, key string) {
		t.Helper()
		msg := message.NewMessage(id, []byte("p-"+id))
		msg.Metadata.Set(millrace.MetadataPartitionKey, key)
		if err := tr.Publisher().Publish(topic, msg); err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
		time.Sleep(2 * time.Millisecond) // record timestamps have millisecond resolution
	}
	for i, key := range []string{"a", "b", "c", "a", "c", "b", "b", "a"} {
		publish("m"+itoa(int64(i)), key)
	}
	produceRaw(t, brokers, &kgo.Record{Topic: topic, Value: []byte("foreign")})
	got, err := tr.Browse(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(got))
	for i, m := range got {
		ids[i] = m.UUID
	}
	if len(ids) != len(want)+1 || !slices.Equal(ids[:len(want)], want) {
		t.Fatalf("browsed %v, want %v and the foreign record", ids, want)
	}
	if last := got[len(got)-1]; string(last.Payload) != "foreign" || last.UUID[:len("kafka:poison/")] != "kafka:poison/" {
		t.Errorf("foreign record browsed as %s %q", last.UUID, last.Payload)
	}
	if got[0].Metadata.Get(millrace.MetadataPartitionKey) != "a" || string(got[0].Payload) != "p-m0" {
		t.Errorf("first message %q %v", got[0].Payload, got[0].Metadata)
	}

	// Browsing again sees the same, and no group moved.
	again, err := dlq.List(ctx, tr, topic, dlq.Filter{})
	if err != nil || len(again) != len(got) {
		t.Fatalf("dlq.List: %d entries (%v), want %d", len(again), err, len(got))
	}
	if _, err := tr.Lag(ctx, "nobody", topic); err != nil {
		t.Fatal(err)
	}

	// A topic that does not exist has no messages, and browsing does not
	// create it.
	if msgs, err := tr.Browse(ctx, "never-published"); err != nil || len(msgs) != 0 {
		t.Fatalf("unknown topic: %d messages, %v", len(msgs), err)
	}
	if _, err := tr.Lag(ctx, "g", "never-published"); !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
		t.Errorf("Browse created the topic it was asked about (lag: %v)", err)
	}
}

func TestBrowse_Errors(t *testing.T) {
	tr := openTransport(t, testConfig(newCluster(t, 1)))
	ctx := context.Background()
	if _, err := tr.Browse(ctx, ""); err == nil {
		t.Error("empty topic: want an error")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := tr.Browse(cancelled, "t"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: got %v", err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Browse(ctx, "t"); !errors.Is(err, transports.ErrClosed) {
		t.Errorf("after close: got %v, want ErrClosed", err)
	}
}
