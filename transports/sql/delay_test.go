package sql_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/middleware"
	"github.com/millrace/millrace/transports"
	sqltransport "github.com/millrace/millrace/transports/sql"
	"github.com/millrace/millrace/transports/transporttest"
)

var (
	_ transports.Transport = (*sqltransport.Transport)(nil)
	_ middleware.Delayer   = (*sqltransport.Transport)(nil)
)

func TestDelay_DeliversToOneGroupAfterDelay(t *testing.T) {
	const delay = 300 * time.Millisecond
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			tr := openTransport(t, b, testConfig(t, b))
			topic := "delay_" + watermill.NewShortUUID()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			subscribe := func(group string) <-chan *message.Message {
				sub, err := tr.Subscriber(group)
				if err != nil {
					t.Fatal(err)
				}
				ch, err := sub.Subscribe(ctx, topic)
				if err != nil {
					t.Fatal(err)
				}
				return ch
			}
			target, other := subscribe("target"), subscribe("other")

			msg := message.NewMessage(watermill.NewUUID(), []byte{0xff, 0x00, 0xfe})
			msg.Metadata.Set("k", "v")
			start := time.Now()
			if err := tr.Delay(context.Background(), topic, "target", msg, delay); err != nil {
				t.Fatal(err)
			}
			got := transporttest.Receive(t, target, 30*time.Second)
			if elapsed := time.Since(start); elapsed < delay {
				t.Errorf("delivered after %s, before the delay of %s", elapsed, delay)
			}
			if got.UUID != msg.UUID || got.Metadata.Get("k") != "v" || !bytes.Equal(got.Payload, msg.Payload) {
				t.Errorf("got %s %v %x, want %s %v %x", got.UUID, got.Metadata, []byte(got.Payload), msg.UUID, msg.Metadata, []byte(msg.Payload))
			}

			// A marker published to the topic after the delayed message
			// was delivered reaches the other group; the delayed message
			// must not have come before it. (Each group reads its private
			// topic and the topic concurrently, so wait a few polls too.)
			marker := message.NewMessage(watermill.NewUUID(), []byte("marker"))
			if err := tr.Publisher().Publish(topic, marker); err != nil {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond)
			if m := transporttest.Receive(t, other, 30*time.Second); m.UUID != marker.UUID {
				t.Fatalf("group other received %s (%q), want only the marker", m.UUID, m.Payload)
			}
			if m := transporttest.Receive(t, target, 30*time.Second); m.UUID != marker.UUID {
				t.Fatalf("group target received %s again, want the marker", m.UUID)
			}
			select {
			case m := <-other:
				t.Fatalf("group other received %s", m.UUID)
			case <-time.After(100 * time.Millisecond):
			}
		})
	}
}

func TestDelay_SurvivesUntilGroupSubscribes(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			tr := openTransport(t, b, testConfig(t, b))
			topic := "late_" + watermill.NewShortUUID()
			msg := message.NewMessage(watermill.NewUUID(), []byte("late"))
			if err := tr.Delay(context.Background(), topic, "g", msg, 0); err != nil {
				t.Fatal(err)
			}
			sub, err := tr.Subscriber("g")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ch, err := sub.Subscribe(ctx, topic)
			if err != nil {
				t.Fatal(err)
			}
			if got := transporttest.Receive(t, ch, 30*time.Second); got.UUID != msg.UUID {
				t.Fatalf("got %s, want %s", got.UUID, msg.UUID)
			}
		})
	}
}
