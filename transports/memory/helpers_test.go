package memory_test

import (
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/transports/memory"
)

// wait is how long a test waits for a message: a minute of the synctest
// bubble's fake clock.
const wait = time.Minute

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
