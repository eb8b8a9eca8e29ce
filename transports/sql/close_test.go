package sql_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/transports"
	"github.com/millrace/millrace/transports/transporttest"
)

// TestClose_DoesNotWaitForAnotherSubscriptionsAck: a subscription waiting
// for its group's offsets row, which a subscription of another process
// holds while its message is unacked, ends at once on Close instead of
// after that message's ack deadline.
func TestClose_DoesNotWaitForAnotherSubscriptionsAck(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cfg := testConfig(t, b)
			cfg.AckDeadline = 30 * time.Second
			holder, waiter := openTransport(t, b, cfg), openTransport(t, b, cfg)
			topic := "close_" + watermill.NewShortUUID()
			held := transporttest.SubscribeGroup(t, holder, "g", topic)
			if err := holder.Publisher().Publish(topic, message.NewMessage(watermill.NewUUID(), []byte("x"))); err != nil {
				t.Fatal(err)
			}
			m := transporttest.Next(t, held, 10*time.Second)
			defer m.Ack()

			transporttest.SubscribeGroup(t, waiter, "g", topic)
			time.Sleep(300 * time.Millisecond) // let it block on the lock

			start := time.Now()
			if err := waiter.Close(); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("Close took %s", d)
			}
		})
	}
}

// After Close, every call fails with an error wrapping transports.ErrClosed,
// a TxPublisher's Publish included.
func TestClose_CallsAfterwardsFailWithErrClosed(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cfg := testConfig(t, b)
			tr := openTransport(t, b, cfg)
			db := rawDB(t, b, cfg)
			tx, err := db.BeginTx(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = tx.Rollback() }()
			txPub := tr.TxPublisher(tx)

			transporttest.CheckClosed(t, tr, "close_"+watermill.NewShortUUID(), "g")
			if err := txPub.Publish("t", message.NewMessage(watermill.NewUUID(), nil)); !errors.Is(err, transports.ErrClosed) {
				t.Errorf("TxPublisher's Publish after Close: %v, want an error wrapping transports.ErrClosed", err)
			}
		})
	}
}

// A subscription whose context ends settles what was acked: the offset of
// the acked messages of its batch is committed, and the group goes on with
// the first message not acked.
func TestSubscribe_EndedContextKeepsTheAcks(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			tr := openTransport(t, b, testConfig(t, b))
			topic := "ctxend_" + watermill.NewShortUUID()
			msgs := make([]*message.Message, 10)
			for i := range msgs {
				msgs[i] = message.NewMessage(watermill.NewUUID(), []byte{byte('0' + i)})
			}
			if err := tr.Publisher().Publish(topic, msgs...); err != nil {
				t.Fatal(err)
			}
			sub, err := tr.Subscriber("g")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			ch := transporttest.Subscribe(t, ctx, sub, topic)
			for _, want := range msgs[:3] {
				if got := transporttest.Receive(t, ch, 10*time.Second); got.UUID != want.UUID {
					t.Fatalf("got %s, want %s", got.UUID, want.UUID)
				}
			}
			transporttest.Next(t, ch, 10*time.Second) // the fourth, never acked
			cancel()
			for range ch {
			}

			next := transporttest.SubscribeGroup(t, tr, "g", topic)
			if got := transporttest.Receive(t, next, 10*time.Second); got.UUID != msgs[3].UUID {
				t.Fatalf("after the context ended the group got %q, want the first message not acked (%q)", got.Payload, msgs[3].Payload)
			}
		})
	}
}
