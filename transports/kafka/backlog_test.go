package kafka_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/transports"
	"github.com/millrace/millrace/transports/kafka/kafkatest"
	"github.com/millrace/millrace/transports/transporttest"
)

// TestBacklog_SumsTheGroupsLag publishes 9 messages over three partitions
// and consumes none: the backlog of a new group is 9 (initial_offset
// oldest), the topic holds 9; after the group acked 4 and its offsets were
// committed, its backlog is 5 and the topic still holds 9; a topic that
// does not exist holds none.
func TestBacklog_SumsTheGroupsLag(t *testing.T) {
	brokers := newCluster(t, 3)
	tr := openTransport(t, testConfig(brokers))
	const topic, group, n = "backlogged", "g", 9
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	keys := []string{"a", "b", "c"}
	for i := range n {
		msg := message.NewMessage(watermill.NewUUID(), nil)
		msg.Metadata.Set(millrace.MetadataPartitionKey, keys[i%3])
		if err := tr.Publisher().Publish(topic, msg); err != nil {
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
		{topic, group, n},
		{topic, "", n},
		{"no-such-topic", group, 0},
		{"no-such-topic", "", 0},
	} {
		if got := backlog(tt.topic, tt.group); got != tt.want {
			t.Errorf("Backlog(%s, %q) = %d, want %d", tt.topic, tt.group, got, tt.want)
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
	// Each partition hands out its next message once the one before is
	// acked: ack 4, hold the fifth.
	transporttest.ReceiveIDs(t, ch, 4, 20*time.Second)
	held := transporttest.Next(t, ch, 20*time.Second)
	defer held.Ack()
	// Offsets are committed asynchronously (every second).
	var got int64
	for ctx.Err() == nil {
		if got = backlog(topic, group); got == n-4 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got != n-4 {
		t.Fatalf("Backlog after 4 acked = %d, want %d", got, n-4)
	}
	if got := backlog(topic, ""); got != n {
		t.Errorf("topic's Backlog after the group consumed = %d, want %d", got, n)
	}
}

// CheckHealth is nil while a broker answers, an error naming the brokers
// once none does, and an error wrapping transports.ErrClosed after Close.
func TestCheckHealth_BrokerAnswersOrNot(t *testing.T) {
	cluster, err := kafkatest.Start(1)
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	cfg := testConfig(brokers)
	cfg.ConnectTimeout = time.Second
	tr := openTransport(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := tr.CheckHealth(ctx); err != nil {
		t.Fatalf("CheckHealth with the broker up: %v", err)
	}

	cluster.Close()
	err = tr.CheckHealth(ctx)
	if err == nil || !strings.Contains(err.Error(), brokers[0]) {
		t.Errorf("CheckHealth with the broker gone: %v, want an error naming %s", err, brokers[0])
	}

	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tr.CheckHealth(ctx); !errors.Is(err, transports.ErrClosed) {
		t.Errorf("CheckHealth after Close: %v, want an error wrapping transports.ErrClosed", err)
	}
}
