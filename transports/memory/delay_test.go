package memory_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/middleware"
	"github.com/millrace/millrace/transports"
	"github.com/millrace/millrace/transports/memory"
	"github.com/millrace/millrace/transports/transporttest"
)

// The broker and the transport it is opened as implement middleware.Delayer
// structurally; package memory does not import package middleware.
var _ middleware.Delayer = (*memory.Broker)(nil)

func TestDelay_TransportIsDelayer(t *testing.T) {
	tr, err := memory.Kind().Open(t.Context(), memory.DefaultConfig(), transports.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if _, ok := tr.(middleware.Delayer); !ok {
		t.Fatalf("%T does not implement middleware.Delayer", tr)
	}
}

func TestDelay_ArrivesAfterExactlyDelayToThatGroupOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, nil)
		billing := transporttest.Subscribe(t, t.Context(), b.Subscriber("billing"), "orders")
		shipping := transporttest.Subscribe(t, t.Context(), b.Subscriber("shipping"), "orders")

		sent := msg("d0", "")
		sent.Metadata.Set("a", "1")
		start := time.Now()
		if err := b.Delay(t.Context(), "orders", "billing", sent, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if time.Since(start) != 0 {
			t.Fatal("Delay blocked")
		}
		sent.Metadata.Set("a", "changed after Delay")

		time.Sleep(5*time.Second - time.Nanosecond)
		assertNothing(t, billing)
		m := transporttest.Next(t, billing, wait)
		if got := time.Since(start); got != 5*time.Second {
			t.Errorf("delivered after %v, want exactly 5s", got)
		}
		if m.UUID != "d0" || string(m.Payload) != "d0" || m.Metadata.Get("a") != "1" {
			t.Errorf("delivered %s %q a=%q, want the copy taken at Delay", m.UUID, m.Payload, m.Metadata.Get("a"))
		}
		m.Ack()

		time.Sleep(time.Hour)
		assertNothing(t, billing)
		assertNothing(t, shipping) // other groups never see it

		// Nor does a group created later: delayed copies are not history.
		if got, err := b.Browse(t.Context(), "orders"); err != nil || len(got) != 0 {
			t.Errorf("Browse = %d messages, %v; want none", len(got), err)
		}
	})
}

func TestDelay_ConsumerKeepsReceivingMeanwhile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, nil)
		ch := transporttest.Subscribe(t, t.Context(), b.Subscriber("billing"), "orders")
		if err := b.Delay(t.Context(), "orders", "billing", msg("d0", ""), 30*time.Second); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		publish(t, b, "orders", "m0", "m1")
		if got := transporttest.ReceiveIDs(t, ch, 2, wait); !slices.Equal(got, []string{"m0", "m1"}) {
			t.Errorf("got %v, want [m0 m1]", got)
		}
		if time.Since(start) != 0 {
			t.Errorf("other messages waited %v for the delayed one", time.Since(start))
		}
		if got := transporttest.ReceiveIDs(t, ch, 1, wait); got[0] != "d0" || time.Since(start) != 30*time.Second {
			t.Errorf("got %v after %v, want d0 after 30s", got, time.Since(start))
		}
	})
}

func TestDelay_KeyedCopyJoinsEndOfKeyOrderWhenDue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, nil)
		ch := transporttest.Subscribe(t, t.Context(), b.Subscriber("billing"), "orders")

		// The key is not held back while the copy waits ...
		if err := b.Delay(t.Context(), "orders", "billing", msg("d0", "k"), time.Second); err != nil {
			t.Fatal(err)
		}
		if err := b.Publish("orders", msg("m0", "k")); err != nil {
			t.Fatal(err)
		}
		first := transporttest.Next(t, ch, wait)
		if first.UUID != "m0" {
			t.Fatalf("got %s, want m0 at once", first.UUID)
		}
		// ... and once due it queues behind the key's pending messages.
		if err := b.Publish("orders", msg("m1", "k")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		first.Ack()
		if got := transporttest.ReceiveIDs(t, ch, 2, wait); !slices.Equal(got, []string{"m1", "d0"}) {
			t.Errorf("got %v, want [m1 d0]", got)
		}
		if err := b.Publish("orders", msg("m2", "k")); err != nil {
			t.Fatal(err)
		}
		if got := transporttest.ReceiveIDs(t, ch, 1, wait); got[0] != "m2" {
			t.Errorf("got %v, want m2", got)
		}
	})
}

func TestDelay_ZeroDelayIsPendingAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, nil)
		ch := transporttest.Subscribe(t, t.Context(), b.Subscriber("billing"), "orders")
		start := time.Now()
		if err := b.Delay(t.Context(), "orders", "billing", msg("d0", ""), 0); err != nil {
			t.Fatal(err)
		}
		if got := transporttest.ReceiveIDs(t, ch, 1, wait); got[0] != "d0" || time.Since(start) != 0 {
			t.Errorf("got %v after %v, want d0 at once", got, time.Since(start))
		}
	})
}

func TestDelay_CreatesMissingGroup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, nil)
		publish(t, b, "orders", "m0")
		if err := b.Delay(t.Context(), "orders", "audit", msg("d0", ""), time.Second); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Hour) // due long before anyone subscribes
		ch := transporttest.Subscribe(t, t.Context(), b.Subscriber("audit"), "orders")
		// The group starts like any new group, with the retained history.
		if got := transporttest.ReceiveIDs(t, ch, 2, wait); !slices.Equal(got, []string{"m0", "d0"}) {
			t.Errorf("got %v, want [m0 d0]", got)
		}
		assertNothing(t, ch)
	})
}

func TestDelay_Errors(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	closed, err := memory.New(*memory.DefaultConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = closed.Close()

	tests := []struct {
		name  string
		b     *memory.Broker // nil: a new open broker
		ctx   context.Context
		group string
		msg   *message.Message
		delay time.Duration
		want  error // nil: any error
	}{
		{name: "negative delay", group: "billing", msg: msg("d0", ""), delay: -time.Nanosecond},
		{name: "nil message", group: "billing"},
		{name: "anonymous group", group: "", msg: msg("d0", "")},
		{name: "context done", ctx: cancelled, group: "billing", msg: msg("d0", ""), want: context.Canceled},
		{name: "closed broker", b: closed, group: "billing", msg: msg("d0", ""), want: transports.ErrClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.b
			if b == nil {
				b = newBroker(t, nil)
			}
			ctx := tt.ctx
			if ctx == nil {
				ctx = t.Context()
			}
			err := b.Delay(ctx, "orders", tt.group, tt.msg, tt.delay)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Errorf("Delay = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestDelay_CloseCancelsPendingDelays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := memory.New(*memory.DefaultConfig(), nil)
		if err != nil {
			t.Fatal(err)
		}
		s := b.Subscriber("billing")
		ch := transporttest.Subscribe(t, t.Context(), s, "orders")
		for i, d := range []time.Duration{time.Second, time.Minute, time.Hour} {
			m := msg(ids("d", 3)[i], "k")
			if err := b.Delay(t.Context(), "orders", "billing", m, d); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		assertClosed(t, ch)
		// No timer fires into the closed broker, and nothing is left
		// running: synctest.Test fails on a goroutine that outlives the
		// bubble, goleak on one that outlives the package's tests.
		time.Sleep(2 * time.Hour)
		synctest.Wait()
		if err := b.Delay(t.Context(), "orders", "billing", msg("late", ""), time.Second); !errors.Is(err, transports.ErrClosed) {
			t.Errorf("Delay after Close = %v, want ErrClosed", err)
		}
	})
}

func TestDelay_CopyWaitsOutItsDelayAcrossResubscribe(t *testing.T) {
	// A copy waiting for its delay is not among the group's messages yet: a
	// group whose subscriber closes and comes back does not get it early.
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, nil)
		s := b.Subscriber("billing")
		_ = transporttest.Subscribe(t, t.Context(), s, "orders")
		if err := b.Delay(t.Context(), "orders", "billing", msg("d0", ""), 30*time.Second); err != nil {
			t.Fatal(err)
		}
		_ = s.Close()
		start := time.Now()
		ch := transporttest.Subscribe(t, t.Context(), b.Subscriber("billing"), "orders")
		m := transporttest.Next(t, ch, wait)
		if m.UUID != "d0" || time.Since(start) != 30*time.Second {
			t.Errorf("got %s after %v, want d0 after 30s", m.UUID, time.Since(start))
		}
		m.Ack()
	})
}
