package kafka_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
)

// TestPartitionKey_KeepsOrderPerKey publishes interleaved messages of several
// keys to a topic of several partitions and checks that one subscription
// receives each key's messages in publish order.
func TestPartitionKey_KeepsOrderPerKey(t *testing.T) {
	tr := openTransport(t, testConfig(newCluster(t, 4)))
	const keys, perKey = 5, 40
	topic := "orders"

	var msgs []*message.Message
	for i := range perKey {
		for k := range keys {
			m := message.NewMessage(watermill.NewUUID(), []byte(strconv.Itoa(i)))
			m.Metadata.Set(millrace.MetadataPartitionKey, fmt.Sprintf("key-%d", k))
			msgs = append(msgs, m)
		}
	}
	if err := tr.Publisher().Publish(topic, msgs...); err != nil {
		t.Fatal(err)
	}

	sub, err := tr.Subscriber("order-check")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	ch, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}

	next := map[string]int{}
	for range keys * perKey {
		select {
		case m := <-ch:
			key := m.Metadata.Get(millrace.MetadataPartitionKey)
			n, _ := strconv.Atoi(string(m.Payload))
			if n != next[key] {
				t.Fatalf("%s: got message %d, want %d", key, n, next[key])
			}
			next[key]++
			m.Ack()
		case <-ctx.Done():
			t.Fatalf("timed out; received per key: %v", next)
		}
	}
}
