package sql_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/middleware/dlq"
	"github.com/millrace/millrace/transports"
	sqltransport "github.com/millrace/millrace/transports/sql"
	"github.com/millrace/millrace/transports/transporttest"
)

var _ dlq.Browser = (*sqltransport.Transport)(nil)

func TestBrowse_ReadsOldestFirstWithoutConsuming(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			tr := openTransport(t, b, testConfig(t, b))
			ctx := context.Background()
			topic := "browse_" + watermill.NewShortUUID()

			if got, err := tr.Browse(ctx, topic); err != nil || len(got) != 0 {
				t.Fatalf("unknown topic: %v, %v", got, err)
			}

			var published []*message.Message
			for i, p := range []string{"a", "b", "c"} {
				m := message.NewMessage(watermill.NewUUID(), []byte(p))
				m.Metadata.Set("i", string(rune('0'+i)))
				published = append(published, m)
			}
			if err := tr.Publisher().Publish(topic, published[:2]...); err != nil {
				t.Fatal(err)
			}
			if err := tr.Publisher().Publish(topic, published[2]); err != nil {
				t.Fatal(err)
			}

			// Group "acked" consumes everything; Browse still sees it all.
			acked := transporttest.SubscribeGroup(t, tr, "acked", topic)
			for range published {
				transporttest.Receive(t, acked, 10*time.Second)
			}
			for range 2 {
				got, err := tr.Browse(ctx, topic)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(published) {
					t.Fatalf("browse: %d messages, want %d", len(got), len(published))
				}
				for i, want := range published {
					if got[i].UUID != want.UUID || !bytes.Equal(got[i].Payload, want.Payload) || got[i].Metadata.Get("i") != want.Metadata.Get("i") {
						t.Errorf("browse[%d] = %s %q %v, want %s %q %v", i, got[i].UUID, got[i].Payload, got[i].Metadata, want.UUID, want.Payload, want.Metadata)
					}
				}
			}

			// Browsing moved no offset: a group that subscribes now gets
			// every message, and "acked" gets nothing more.
			fresh := transporttest.SubscribeGroup(t, tr, "fresh", topic)
			for _, want := range published {
				if got := transporttest.Receive(t, fresh, 10*time.Second); got.UUID != want.UUID {
					t.Fatalf("fresh group got %s, want %s", got.UUID, want.UUID)
				}
			}
			transporttest.ExpectNone(t, acked, 200*time.Millisecond)

			entries, err := dlq.List(ctx, tr, topic, dlq.Filter{})
			if err != nil || len(entries) != len(published) {
				t.Fatalf("dlq.List: %d entries, %v", len(entries), err)
			}
		})
	}
}

func TestBrowse_AfterCloseIsErrClosed(t *testing.T) {
	b := backends[0]
	tr := openTransport(t, b, testConfig(t, b))
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Browse(context.Background(), "x"); !errors.Is(err, transports.ErrClosed) {
		t.Fatalf("err = %v, want ErrClosed", err)
	}
}
