package amqp_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/millrace/millrace/transports"
	"github.com/millrace/millrace/transports/transporttest"
)

// boundQueues lists the queues bound to exchange, as rabbitmqctl reports
// them.
func boundQueues(t *testing.T, exchange string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "rabbitmqctl", "list_bindings", "-q", "--no-table-headers",
		"source_name", "destination_name", "destination_kind").Output()
	if err != nil {
		t.Fatalf("rabbitmqctl list_bindings: %v", err)
	}
	var queues []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == exchange && f[2] == "queue" {
			queues = append(queues, f[1])
		}
	}
	return queues
}

// TestSubscribeEphemeral_EachReceivesWhatIsPublishedAfterItOpened opens two
// ephemeral subscriptions to a topic that already had a message and a
// consumer group: each receives every message published after it opened
// (they do not compete, as a group's subscriptions do), none published
// before; a nacked message comes again on the subscription that nacked it;
// and once the subscriptions end the broker keeps no queue of theirs.
func TestSubscribeEphemeral_EachReceivesWhatIsPublishedAfterItOpened(t *testing.T) {
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		t.Fatal("rabbitmqctl not on PATH")
	}
	topic := uniqueTopic("ephemeral")
	deleteLater(t, func() []string { return []string{topic + ".g"} }, func() []string { return []string{topic} })
	tr := openTransport(t, nil)
	group, err := tr.Subscriber("g")
	if err != nil {
		t.Fatal(err)
	}
	if err := group.(message.SubscribeInitializer).SubscribeInitialize(topic); err != nil {
		t.Fatal(err)
	}
	pub := openTransport(t, nil).Publisher()
	if err := pub.Publish(topic, newMessage("before")); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	subs := make([]<-chan *message.Message, 2)
	for i := range subs {
		if subs[i], err = tr.SubscribeEphemeral(ctx, topic); err != nil {
			t.Fatal(err)
		}
	}
	queues := boundQueues(t, topic)
	slices.Sort(queues)
	if len(queues) != 3 || !strings.HasPrefix(queues[0], "amq.gen-") || !strings.HasPrefix(queues[1], "amq.gen-") || queues[2] != topic+".g" {
		t.Fatalf("queues bound to %s: %v, want the group's and two server-named ones", topic, queues)
	}

	want := []string{"after-0", "after-1", "after-2"}
	for _, p := range want {
		if err := pub.Publish(topic, newMessage(p)); err != nil {
			t.Fatal(err)
		}
	}
	for i, ch := range subs {
		var got []string
		nacked := false
		for len(got) < len(want) {
			m := transporttest.Next(t, ch, 10*time.Second)
			if i == 0 && !nacked {
				nacked = true
				m.Nack() // comes again, on this subscription
				continue
			}
			m.Ack()
			got = append(got, string(m.Payload))
		}
		slices.Sort(got) // the nacked message comes after those prefetched
		if !slices.Equal(got, want) {
			t.Errorf("subscription %d received %v, want %v", i, got, want)
		}
		transporttest.ExpectNone(t, ch, 200*time.Millisecond)
	}

	cancel()
	for i, ch := range subs {
		select {
		case _, ok := <-ch:
			if ok {
				t.Fatalf("subscription %d delivered a message after its context ended", i)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("subscription %d not closed 10s after its context ended", i)
		}
	}
	for _, q := range queues[:2] {
		deadline := time.Now().Add(20 * time.Second)
		for queueExists(t, q) {
			if time.Now().After(deadline) {
				t.Fatalf("queue %s still exists 20s after its subscription ended", q)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// queueExists reports whether queue exists, whoever has it (a passive
// declaration of another connection's exclusive queue is refused with
// RESOURCE_LOCKED; of a missing one with NOT_FOUND).
func queueExists(t *testing.T, queue string) bool {
	t.Helper()
	conn, err := amqp091.Dial(brokerURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	_, err = ch.QueueDeclarePassive(queue, false, false, false, false, nil)
	var aerr *amqp091.Error
	switch {
	case err == nil:
		return true
	case errors.As(err, &aerr) && aerr.Code == amqp091.NotFound:
		return false
	case errors.As(err, &aerr) && aerr.Code == amqp091.ResourceLocked:
		return true
	}
	t.Fatalf("passive declaration of %s: %v", queue, err)
	return false
}

// Closing the transport ends its ephemeral subscriptions; later ones fail
// with transports.ErrClosed, as does one whose context already ended.
func TestSubscribeEphemeral_EndsWithTheTransport(t *testing.T) {
	topic := uniqueTopic("ephemeral")
	deleteLater(t, func() []string { return nil }, func() []string { return []string{topic} })
	tr := openTransport(t, nil)
	ch, err := tr.SubscribeEphemeral(t.Context(), topic)
	if err != nil {
		t.Fatal(err)
	}
	done, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tr.SubscribeEphemeral(done, topic); !errors.Is(err, context.Canceled) {
		t.Errorf("SubscribeEphemeral with an ended context: %v, want context.Canceled", err)
	}
	if _, err := tr.SubscribeEphemeral(t.Context(), ""); err == nil || !strings.Contains(err.Error(), "topic must not be empty") {
		t.Errorf("SubscribeEphemeral of topic \"\": %v, want an error naming the empty topic", err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("subscription delivered a message after the transport closed")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("subscription not closed 10s after the transport closed")
	}
	if _, err := tr.SubscribeEphemeral(t.Context(), topic); !errors.Is(err, transports.ErrClosed) {
		t.Errorf("SubscribeEphemeral after Close: %v, want an error wrapping transports.ErrClosed", err)
	}
}
