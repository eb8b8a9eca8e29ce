package sql_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/transports/transporttest"
)

func TestBinaryPayloadRoundTrip(t *testing.T) {
	payloads := map[string][]byte{
		"invalid utf8": {0xff, 0xfe, 0x00, 0x80, 0xc3, 0x28, 0x00, 0x01},
		"all bytes":    allBytes(),
		"empty":        {},
		"json":         []byte(`{"a":1}`),
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			tr := openTransport(t, b, testConfig(t, b))
			sub, err := tr.Subscriber("g")
			if err != nil {
				t.Fatal(err)
			}
			topic := "bin_" + watermill.NewShortUUID()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ch, err := sub.Subscribe(ctx, topic)
			if err != nil {
				t.Fatal(err)
			}
			for name, p := range payloads {
				msg := message.NewMessage(watermill.NewUUID(), p)
				msg.Metadata.Set("case", name)
				if err := tr.Publisher().Publish(topic, msg); err != nil {
					t.Fatalf("%s: publish: %v", name, err)
				}
				got := transporttest.Receive(t, ch, 10*time.Second)
				if got.UUID != msg.UUID || got.Metadata.Get("case") != name {
					t.Fatalf("%s: got message %s %v", name, got.UUID, got.Metadata)
				}
				if !bytes.Equal(got.Payload, p) {
					t.Errorf("%s: payload = %x, want %x", name, []byte(got.Payload), p)
				}
			}
		})
	}
}

func allBytes() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(255 - i)
	}
	return b
}
