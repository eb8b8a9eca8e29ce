package amqp_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/transports/transporttest"
)

// queueCounts returns queue's ready and unacknowledged message counts, as
// rabbitmqctl reports them.
func queueCounts(t *testing.T, queue string) (ready, unacked int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "rabbitmqctl", "list_queues", "-q", "--no-table-headers",
		"name", "messages_ready", "messages_unacknowledged").Output()
	if err != nil {
		t.Fatalf("rabbitmqctl list_queues: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == queue {
			ready, _ = strconv.Atoi(f[1])
			unacked, _ = strconv.Atoi(f[2])
			return ready, unacked
		}
	}
	t.Fatalf("queue %s not listed by rabbitmqctl:\n%s", queue, out)
	return 0, 0
}

// subscribeGroup subscribes group to topic on a new transport, and returns
// the subscriber and the messages.
func subscribeGroup(t *testing.T, topic, group string) (sub message.Subscriber, msgs <-chan *message.Message) {
	t.Helper()
	tr := openTransport(t, nil)
	sub, err := tr.Subscriber(group)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err = sub.Subscribe(t.Context(), topic)
	if err != nil {
		t.Fatal(err)
	}
	return sub, msgs
}

func TestAcksOfAQuietQueueAreSentWithoutWaitingForMore(t *testing.T) {
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		t.Fatal("rabbitmqctl not on PATH")
	}
	topic := uniqueTopic("acks")
	queue := topic + ".g"
	deleteLater(t, func() []string { return []string{queue} }, func() []string { return []string{topic} })
	_, msgs := subscribeGroup(t, topic, "g")
	pub := openTransport(t, nil).Publisher()
	for i := range 3 {
		if err := pub.Publish(topic, newMessage(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
		transporttest.Receive(t, msgs, 10*time.Second)
	}
	// The subscription stays open: the acks must reach the broker by
	// themselves, not only when it closes.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ready, unacked := queueCounts(t, queue)
		if ready == 0 && unacked == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d ready and %d unacked messages after all 3 were acked", queue, ready, unacked)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestHeldAcksAreSentBeforeTheSubscriptionCloses(t *testing.T) {
	topic := uniqueTopic("acks")
	queue := topic + ".g"
	deleteLater(t, func() []string { return []string{queue} }, func() []string { return []string{topic} })
	sub, msgs := subscribeGroup(t, topic, "g")
	batch := make([]*message.Message, 290) // not a multiple of the 62 acks sent at once (prefetch 250 / 4)
	for i := range batch {
		batch[i] = newMessage(fmt.Sprint(i))
	}
	if err := openTransport(t, nil).Publisher().Publish(topic, batch...); err != nil {
		t.Fatal(err)
	}
	for range batch {
		transporttest.Receive(t, msgs, 10*time.Second)
	}
	// Close at once: acks still held must be sent, or closing the channel
	// requeues messages that were handled.
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if n := queueDepth(t, queue); n != 0 {
		t.Fatalf("%s holds %d messages after all 290 were acked and the subscriber closed", queue, n)
	}
}

func TestNackAmongHeldAcksRedeliversOnlyTheNackedMessage(t *testing.T) {
	topic := uniqueTopic("acks")
	queue := topic + ".g"
	deleteLater(t, func() []string { return []string{queue} }, func() []string { return []string{topic} })
	sub, msgs := subscribeGroup(t, topic, "g")
	batch := make([]*message.Message, 6)
	for i := range batch {
		batch[i] = newMessage(fmt.Sprint(i))
	}
	if err := openTransport(t, nil).Publisher().Publish(topic, batch...); err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < len(batch)+1 {
		select {
		case m := <-msgs:
			got = append(got, string(m.Payload))
			if string(m.Payload) == "3" && len(got) == 4 {
				m.Nack()
			} else {
				m.Ack()
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("received %v, want 0-5 and 3 again", got)
		}
	}
	if want := "0 1 2 3 4 5 3"; strings.Join(got, " ") != want {
		t.Errorf("received %q, want %q", strings.Join(got, " "), want)
	}
	select {
	case m := <-msgs:
		t.Fatalf("unexpected further delivery %q", m.Payload)
	case <-time.After(200 * time.Millisecond):
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if n := queueDepth(t, queue); n != 0 {
		t.Fatalf("%s holds %d messages after every message was acked", queue, n)
	}
}

// An ack is not held while the next message is being handled: a slow
// handler must not keep the acks of earlier messages back (RabbitMQ would
// redeliver them if the channel closed meanwhile).
func TestAcksAreNotHeldBehindASlowHandler(t *testing.T) {
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		t.Fatal("rabbitmqctl not on PATH")
	}
	topic := uniqueTopic("acks")
	queue := topic + ".g"
	deleteLater(t, func() []string { return []string{queue} }, func() []string { return []string{topic} })
	_, msgs := subscribeGroup(t, topic, "g")
	if err := openTransport(t, nil).Publisher().Publish(topic, newMessage("fast"), newMessage("slow")); err != nil {
		t.Fatal(err)
	}
	transporttest.Receive(t, msgs, 10*time.Second) // acked
	var slow *message.Message
	select {
	case slow = <-msgs: // handled for as long as the test runs
	case <-time.After(10 * time.Second):
		t.Fatal("second message not delivered")
	}
	defer slow.Ack()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, unacked := queueCounts(t, queue)
		if unacked == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d unacked messages while the second is handled, want 1 (the first one's ack held back)", queue, unacked)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A message acked just before its subscriber closes is acked on the broker,
// even when the subscription sees the ack and the close at once (as at the
// end of an App's graceful shutdown: the last handlers ack, then the
// subscribers close): closing the channel must not requeue it.
func TestAckGivenJustBeforeCloseIsSent(t *testing.T) {
	topic := uniqueTopic("acks")
	queue := topic + ".g"
	deleteLater(t, func() []string { return []string{queue} }, func() []string { return []string{topic} })
	tr := openTransport(t, nil)
	pub := openTransport(t, nil).Publisher()
	const rounds = 40
	for i := range rounds {
		sub, err := tr.Subscriber("g")
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := sub.Subscribe(t.Context(), topic)
		if err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish(topic, newMessage(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
		// Once the broker has delivered it, the subscription soon waits to
		// hand the message out; receiving it then lets the subscription run
		// again only after the ack and the close below, so it sees both.
		deadline := time.Now().Add(10 * time.Second)
		for queueDepth(t, queue) != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: message not delivered", i)
			}
			time.Sleep(time.Millisecond)
		}
		transporttest.Next(t, msgs, 10*time.Second).Ack()
		if err := sub.Close(); err != nil {
			t.Fatal(err)
		}
		if n := queueDepth(t, queue); n != 0 {
			t.Fatalf("round %d: %s holds %d messages after the only one was acked and its subscriber closed", i, queue, n)
		}
	}
}
