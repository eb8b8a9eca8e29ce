package memory_test

import (
	"context"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/transports/memory"
)

// newBroker returns a broker with the default config changed by edit (if
// not nil), closed when the test ends.
func newBroker(t testing.TB, edit func(*memory.Config)) *memory.Broker {
	t.Helper()
	cfg := memory.DefaultConfig()
	if edit != nil {
		edit(cfg)
	}
	b, err := memory.New(*cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// msg returns a message with UUID id, payload id and, if key is not empty,
// that partition key.
func msg(id, key string) *message.Message {
	m := message.NewMessage(id, []byte(id))
	if key != "" {
		m.Metadata.Set(millrace.MetadataPartitionKey, key)
	}
	return m
}

// ids returns n message ids prefix0 .. prefix<n-1>.
func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}

func publish(t *testing.T, b *memory.Broker, topic string, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if err := b.Publish(topic, msg(id, "")); err != nil {
			t.Fatal(err)
		}
	}
}

func subscribe(t *testing.T, ctx context.Context, s message.Subscriber, topic string) <-chan *message.Message {
	t.Helper()
	ch, err := s.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// receive returns the next message of ch, failing the test if none comes
// within a minute (of fake time, inside a synctest bubble).
func receive(t *testing.T, ch <-chan *message.Message) *message.Message {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatal("subscription channel closed")
		}
		return m
	case <-time.After(time.Minute):
		t.Fatal("no message within a minute")
		return nil
	}
}

// receiveAcked receives n messages from ch, acks each and returns their ids.
func receiveAcked(t *testing.T, ch <-chan *message.Message, n int) []string {
	t.Helper()
	got := make([]string, 0, n)
	for range n {
		m := receive(t, ch)
		got = append(got, m.UUID)
		m.Ack()
	}
	return got
}

// assertNothing fails if ch has a message ready once every goroutine of the
// bubble is blocked. Call it inside a synctest bubble.
func assertNothing(t *testing.T, ch <-chan *message.Message) {
	t.Helper()
	synctest.Wait()
	select {
	case m, ok := <-ch:
		if ok {
			t.Fatalf("unexpected message %s", m.UUID)
		}
		t.Fatal("subscription channel closed")
	default:
	}
}

// assertClosed fails unless ch is closed once every goroutine of the bubble
// is blocked. Call it inside a synctest bubble.
func assertClosed(t *testing.T, ch <-chan *message.Message) {
	t.Helper()
	synctest.Wait()
	select {
	case m, ok := <-ch:
		if ok {
			t.Fatalf("channel not closed: got message %s", m.UUID)
		}
	default:
		t.Fatal("channel not closed")
	}
}
