package sql_test

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/transports/transporttest"
)

func TestTxPublisher_VisibleOnlyAfterCommit(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cfg := testConfig(t, b)
			tr := openTransport(t, b, cfg)
			db := rawDB(t, b, cfg)
			topic := "tx_" + watermill.NewShortUUID()
			ch := transporttest.SubscribeGroup(t, tr, "g", topic)
			ctx := context.Background()

			// Rolled back: never delivered.
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			lost := message.NewMessage(watermill.NewUUID(), []byte("rolled back"))
			if err := tr.TxPublisher(tx).Publish(topic, lost); err != nil {
				t.Fatal(err)
			}
			if err := tx.Rollback(); err != nil {
				t.Fatal(err)
			}

			// Committed: delivered, but only after the commit.
			tx, err = db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			kept := []*message.Message{
				message.NewMessage(watermill.NewUUID(), []byte("one")),
				message.NewMessage(watermill.NewUUID(), []byte("two")),
			}
			if err := tr.TxPublisher(tx).Publish(topic, kept...); err != nil {
				t.Fatal(err)
			}
			transporttest.ExpectNone(t, ch, 300*time.Millisecond)
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			for _, want := range kept {
				if got := transporttest.Receive(t, ch, 10*time.Second); got.UUID != want.UUID {
					t.Fatalf("got %s (%q), want %s", got.UUID, got.Payload, want.UUID)
				}
			}
			transporttest.ExpectNone(t, ch, 200*time.Millisecond)
		})
	}
}
