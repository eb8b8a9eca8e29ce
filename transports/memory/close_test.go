package memory_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/transports"
	"github.com/millrace/millrace/transports/memory"
	"github.com/millrace/millrace/transports/transporttest"
)

func TestCancel_OfferedMessageGoesBackToGroup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, func(c *memory.Config) { c.RedeliveryDelay, c.MaxRedeliveryDelay = time.Hour, time.Hour })
		publish(t, b, "orders", "m0", "m1", "m2")
		ctx, cancel := context.WithCancel(t.Context())
		ch1 := transporttest.Subscribe(t, ctx, b.Subscriber("billing"), "orders")
		synctest.Wait() // m0 is being offered on ch1, nobody receives it
		cancel()
		assertClosed(t, ch1)

		start := time.Now()
		ch2 := transporttest.Subscribe(t, t.Context(), b.Subscriber("billing"), "orders")
		want := []string{"m0", "m1", "m2"} // m0 in its place, at once
		if got := transporttest.ReceiveIDs(t, ch2, len(want), wait); !slices.Equal(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
		if time.Since(start) != 0 {
			t.Errorf("returned message waited %v", time.Since(start))
		}
	})
}

func TestCancel_ReceivedMessageCanStillBeSettled(t *testing.T) {
	tests := []struct {
		name   string
		settle func(*message.Message) bool
		want   []string // what the group's next member gets
	}{
		{name: "ack", settle: (*message.Message).Ack, want: []string{"m1"}},
		{name: "nack", settle: (*message.Message).Nack, want: []string{"m1", "m0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newBroker(t, func(c *memory.Config) { c.RedeliveryDelay = time.Second })
				publish(t, b, "orders", "m0", "m1")
				ctx, cancel := context.WithCancel(t.Context())
				ch1 := transporttest.Subscribe(t, ctx, b.Subscriber("billing"), "orders")
				m := transporttest.Next(t, ch1, wait)
				cancel()
				assertClosed(t, ch1)
				if m.Context().Err() != nil {
					t.Error("message context cancelled with the subscription context; want it live until settled")
				}

				tt.settle(m)
				synctest.Wait()
				if m.Context().Err() == nil {
					t.Error("message context not cancelled after settling")
				}
				ch2 := transporttest.Subscribe(t, t.Context(), b.Subscriber("billing"), "orders")
				if got := transporttest.ReceiveIDs(t, ch2, len(tt.want), wait); !slices.Equal(got, tt.want) {
					t.Errorf("got %v, want %v", got, tt.want)
				}
				assertNothing(t, ch2)
			})
		})
	}
}

func TestClose_InFlightMessageRedelivered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, func(c *memory.Config) { c.RedeliveryDelay, c.MaxRedeliveryDelay = time.Hour, time.Hour })
		publish(t, b, "orders", "m0", "m1")
		s1 := b.Subscriber("billing")
		ch1 := transporttest.Subscribe(t, t.Context(), s1, "orders")
		m := transporttest.Next(t, ch1, wait)

		if err := s1.Close(); err != nil {
			t.Fatal(err)
		}
		assertClosed(t, ch1)
		if m.Context().Err() == nil {
			t.Error("in-flight message context not cancelled by Close")
		}
		m.Ack() // too late: the message went back to the group

		start := time.Now()
		ch2 := transporttest.Subscribe(t, t.Context(), b.Subscriber("billing"), "orders")
		want := []string{"m0", "m1"}
		if got := transporttest.ReceiveIDs(t, ch2, len(want), wait); !slices.Equal(got, want) || time.Since(start) != 0 {
			t.Errorf("got %v after %v, want %v at once", got, time.Since(start), want)
		}
	})
}

func TestClose_BrokerEndsSubscriptions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, nil)
		s := b.Subscriber("billing")
		ch := transporttest.Subscribe(t, t.Context(), s, "orders")
		publish(t, b, "orders", "m0")
		m := transporttest.Next(t, ch, wait)
		m.Nack() // a pending redelivery timer must not outlive Close

		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		assertClosed(t, ch)
		for range 2 {
			if err := b.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			if err := s.Close(); err != nil {
				t.Errorf("Subscriber.Close after Broker.Close: %v", err)
			}
		}
	})
}

func TestPublishAfterClose(t *testing.T) {
	b := newBroker(t, nil)
	used := b.Subscriber("billing")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	if err := b.Publish("orders", msg("m0", "")); !errors.Is(err, transports.ErrClosed) {
		t.Errorf("Publish after Close: %v, want ErrClosed", err)
	}
	for name, s := range map[string]*memory.Subscriber{"made before Close": used, "made after Close": b.Subscriber("billing")} {
		if _, err := s.Subscribe(context.Background(), "orders"); !errors.Is(err, transports.ErrClosed) {
			t.Errorf("Subscribe on subscriber %s: %v, want ErrClosed", name, err)
		}
	}
}

func TestSubscribeAfterSubscriberClose(t *testing.T) {
	b := newBroker(t, nil)
	s := b.Subscriber("billing")
	_ = s.Close()
	if _, err := s.Subscribe(context.Background(), "orders"); !errors.Is(err, transports.ErrClosed) {
		t.Errorf("Subscribe after Close: %v, want ErrClosed", err)
	}
	if err := b.Publish("orders", msg("m0", "")); err != nil {
		t.Errorf("Publish after a Subscriber closed: %v", err)
	}
}

func TestPublish_NilMessageIsError(t *testing.T) {
	b := newBroker(t, nil)
	if err := b.Publish("orders", nil); err == nil {
		t.Error("Publish(nil) succeeded")
	}
}
