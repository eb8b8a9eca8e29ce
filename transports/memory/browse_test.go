package memory_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"testing/synctest"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/transports"
	"github.com/millrace/millrace/transports/memory"
	"github.com/millrace/millrace/transports/transporttest"
)

func TestBrowse_ReturnsRetainedMessagesOldestFirst(t *testing.T) {
	tests := []struct {
		name      string
		retention int
		publish   []string
		want      []string
	}{
		{name: "all retained", retention: 10, publish: ids("m", 3), want: ids("m", 3)},
		{name: "oldest beyond retention gone", retention: 2, publish: ids("m", 5), want: []string{"m3", "m4"}},
		{name: "retention 0", retention: 0, publish: ids("m", 3), want: []string{}},
		{name: "unknown topic", retention: 10, want: []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBroker(t, func(c *memory.Config) { c.Retention = tt.retention })
			publish(t, b, "poison", tt.publish...)
			got, err := b.Browse(t.Context(), "poison")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(transporttest.UUIDs(got), tt.want) {
				t.Errorf("Browse = %v, want %v", transporttest.UUIDs(got), tt.want)
			}
		})
	}
}

func TestBrowse_DoesNotConsumeAndReturnsCopies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, nil)
		sent := msg("m0", "k")
		sent.Metadata.Set("a", "1")
		if err := b.Publish("poison", sent); err != nil {
			t.Fatal(err)
		}
		first, err := b.Browse(t.Context(), "poison")
		if err != nil || len(first) != 1 {
			t.Fatalf("Browse = %d messages, %v; want 1", len(first), err)
		}
		first[0].Payload[0] = 'X'
		first[0].Metadata.Set("a", "changed by the browser")

		second, err := b.Browse(t.Context(), "poison")
		if err != nil || len(second) != 1 {
			t.Fatalf("second Browse = %d messages, %v; want 1", len(second), err)
		}
		if m := second[0]; m.UUID != "m0" || string(m.Payload) != "m0" || m.Metadata.Get("a") != "1" {
			t.Errorf("second Browse = %s %q a=%q; want the message as published", m.UUID, m.Payload, m.Metadata.Get("a"))
		}
		// A group subscribing afterwards still gets it, as published.
		ch := transporttest.Subscribe(t, t.Context(), b.Subscriber("alerts"), "poison")
		if m := transporttest.Next(t, ch, wait); m.UUID != "m0" || string(m.Payload) != "m0" {
			t.Errorf("group got %s %q, want m0", m.UUID, m.Payload)
		}
	})
}

func TestBrowse_Errors(t *testing.T) {
	b, err := memory.New(*memory.DefaultConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, b, "poison", "m0")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := b.Browse(ctx, "poison"); !errors.Is(err, context.Canceled) {
		t.Errorf("Browse with done context = %v, want context.Canceled", err)
	}
	_ = b.Close()
	if _, err := b.Browse(t.Context(), "poison"); !errors.Is(err, transports.ErrClosed) {
		t.Errorf("Browse after Close = %v, want ErrClosed", err)
	}
}

func TestBrowse_Transport(t *testing.T) {
	tr, err := memory.Kind().Open(t.Context(), memory.DefaultConfig(), transports.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	browser, ok := tr.(interface {
		Browse(context.Context, string) ([]*message.Message, error)
	})
	if !ok {
		t.Fatalf("%T has no Browse method", tr)
	}
	if err := tr.Publisher().Publish("poison", msg("m0", "")); err != nil {
		t.Fatal(err)
	}
	got, err := browser.Browse(t.Context(), "poison")
	if err != nil || !slices.Equal(transporttest.UUIDs(got), []string{"m0"}) {
		t.Errorf("Browse = %v, %v; want [m0]", transporttest.UUIDs(got), err)
	}
}
