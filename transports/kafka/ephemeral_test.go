package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/transports"
	"github.com/millrace/millrace/transports/kafka"
	"github.com/millrace/millrace/transports/transporttest"
)

// keyed returns a message with id id and partition key key.
func keyed(id, key string) *message.Message {
	m := message.NewMessage(id, []byte(id))
	m.Metadata.Set(millrace.MetadataPartitionKey, key)
	return m
}

// ephemeral returns tr as a transports.EphemeralSubscriber, failing the test
// if it is not one.
func ephemeral(t *testing.T, tr transports.Transport) transports.EphemeralSubscriber {
	t.Helper()
	es, ok := tr.(transports.EphemeralSubscriber)
	if !ok {
		t.Fatalf("%T does not implement transports.EphemeralSubscriber", tr)
	}
	return es
}

// consumerGroups lists the consumer groups the broker knows.
func consumerGroups(t *testing.T, brokers []string) []string {
	t.Helper()
	admin, err := sarama.NewClusterAdmin(brokers, sarama.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = admin.Close() }()
	groups, err := admin.ListConsumerGroups()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for g := range groups {
		names = append(names, g)
	}
	slices.Sort(names)
	return names
}

// TestSubscribeEphemeral_ReceivesWhatIsPublishedAfterItOpened opens two
// ephemeral subscriptions to a topic of three partitions that already holds
// messages: each receives every message published after it opened, from
// every partition, and none published before; a nacked message comes again
// on the subscription that nacked it; and the broker knows no consumer group
// afterwards.
func TestSubscribeEphemeral_ReceivesWhatIsPublishedAfterItOpened(t *testing.T) {
	brokers := newCluster(t, 3)
	tr := openTransport(t, testConfig(brokers))
	const topic = "replies"
	var keys []string // one per partition
	for _, k := range partitionKeys(t, topic, 3) {
		keys = append(keys, k)
	}
	for _, k := range keys {
		if err := tr.Publisher().Publish(topic, keyed("before-"+k, k)); err != nil {
			t.Fatal(err)
		}
	}

	es := ephemeral(t, tr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	subs := make([]<-chan *message.Message, 2)
	for i := range subs {
		ch, err := es.SubscribeEphemeral(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		subs[i] = ch
	}

	var want []string
	partitions := map[int32]bool{}
	for n := range 2 {
		for _, k := range keys {
			id := fmt.Sprintf("after-%s-%d", k, n)
			want = append(want, id)
			if err := tr.Publisher().Publish(topic, keyed(id, k)); err != nil {
				t.Fatal(err)
			}
		}
	}
	slices.Sort(want)
	for i, ch := range subs {
		var got []string
		nacked := false
		for len(got) < len(want) {
			m := transporttest.Next(t, ch, 20*time.Second)
			if p, ok := partitionOf(m); ok {
				partitions[p] = true
			}
			if !nacked && i == 0 {
				nacked = true
				m.Nack() // comes again, on this subscription
				continue
			}
			m.Ack()
			got = append(got, m.UUID)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("subscription %d received %v, want %v", i, got, want)
		}
	}
	if len(partitions) != 3 {
		t.Errorf("messages came from partitions %v, want all 3", partitions)
	}
	for _, ch := range subs {
		transporttest.ExpectNone(t, ch, 300*time.Millisecond)
	}

	cancel()
	for i, ch := range subs {
		if m, ok := <-ch; ok {
			t.Fatalf("subscription %d delivered %s after its context ended", i, m.UUID)
		}
	}
	if groups := consumerGroups(t, brokers); len(groups) != 0 {
		t.Errorf("consumer groups on the broker: %v, want none", groups)
	}
}

// TestSubscribeEphemeral_EndsWithTheTransport: Close ends an ephemeral
// subscription (its channel closes); afterwards SubscribeEphemeral fails
// with an error wrapping transports.ErrClosed.
func TestSubscribeEphemeral_EndsWithTheTransport(t *testing.T) {
	brokers := newCluster(t, 2)
	tr, err := kafka.Open(context.Background(), *testConfig(brokers), transports.Deps{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	es := ephemeral(t, tr)
	ch, err := es.SubscribeEphemeral(context.Background(), "replies")
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case m, ok := <-ch:
		if ok {
			t.Fatalf("received %s after Close", m.UUID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the subscription's channel is still open after Close")
	}
	if _, err := es.SubscribeEphemeral(context.Background(), "replies"); !errors.Is(err, transports.ErrClosed) {
		t.Errorf("SubscribeEphemeral after Close: %v, want an error wrapping transports.ErrClosed", err)
	}
}

// TestSubscribeEphemeral_ManyComeAndGo opens and ends ephemeral
// subscriptions one after another on one transport: each receives what is
// published while it is open and ends with its context.
func TestSubscribeEphemeral_ManyComeAndGo(t *testing.T) {
	brokers := newCluster(t, 1)
	tr := openTransport(t, testConfig(brokers))
	es := ephemeral(t, tr)
	for i := range 5 {
		ctx, cancel := context.WithCancel(context.Background())
		ch, err := es.SubscribeEphemeral(ctx, "replies")
		if err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("m%d", i)
		if err := tr.Publisher().Publish("replies", message.NewMessage(id, nil)); err != nil {
			t.Fatal(err)
		}
		if got := transporttest.Receive(t, ch, 20*time.Second); got.UUID != id {
			t.Fatalf("round %d received %s, want %s", i, got.UUID, id)
		}
		cancel()
		for range ch {
		}
	}
}
