package sql_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/transports"
	"github.com/millrace/millrace/transports/transporttest"
)

// An ephemeral subscription receives what is published after it opened,
// every one of them (two subscriptions are in no group together), in
// order; Ack moves on and Nack delivers the message again. On PostgreSQL
// a message committed before, while an older transaction still ran, is
// not among them.
func TestSubscribeEphemeral_ReceivesWhatIsPublishedAfterItOpened(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cfg := testConfig(t, b)
			tr := openTransport(t, b, cfg)
			topic := "eph_" + watermill.NewShortUUID()
			endOlder := func() {}
			if b.name == "postgres" {
				older, err := rawDB(t, b, cfg).BeginTx(context.Background(), nil)
				if err != nil {
					t.Fatal(err)
				}
				endOlder = func() { _ = older.Rollback() }
				defer endOlder()
				if _, err := older.Exec("SELECT pg_current_xact_id()"); err != nil { // a running transaction
					t.Fatal(err)
				}
			}
			publish := func(payloads ...string) []*message.Message {
				t.Helper()
				var msgs []*message.Message
				for _, p := range payloads {
					msgs = append(msgs, message.NewMessage(watermill.NewUUID(), []byte(p)))
				}
				if err := tr.Publisher().Publish(topic, msgs...); err != nil {
					t.Fatal(err)
				}
				return msgs
			}
			publish("before")
			one, two := subscribeEphemeral(t, tr, topic), subscribeEphemeral(t, tr, topic)
			endOlder()
			want := publish("a", "b", "c")

			for _, ch := range []<-chan *message.Message{one, two} {
				first := transporttest.Next(t, ch, 10*time.Second)
				if first.UUID != want[0].UUID {
					t.Fatalf("got %q first, want %q", first.Payload, want[0].Payload)
				}
				first.Nack()
				again := transporttest.Receive(t, ch, 10*time.Second)
				if again.UUID != want[0].UUID {
					t.Fatalf("after Nack got %q, want %q again", again.Payload, want[0].Payload)
				}
				if got := transporttest.ReceiveIDs(t, ch, 2, 10*time.Second); !slices.Equal(got, transporttest.UUIDs(want[1:])) {
					t.Fatalf("got %v, want %v", got, transporttest.UUIDs(want[1:]))
				}
				transporttest.ExpectNone(t, ch, 200*time.Millisecond)
			}
		})
	}
}

// A message whose transaction began before the subscription opened and
// committed after it is delivered, before what was committed after it
// (PostgreSQL: rows in commit order of their transactions; MySQL: the
// subscription waits for the uncommitted row).
func TestSubscribeEphemeral_TransactionOpenAtStartIsNotSkipped(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cfg := testConfig(t, b)
			tr := openTransport(t, b, cfg)
			topic := "ephtx_" + watermill.NewShortUUID()
			if err := tr.Publisher().Publish(topic, message.NewMessage(watermill.NewUUID(), []byte("old"))); err != nil {
				t.Fatal(err)
			}
			tx, err := rawDB(t, b, cfg).BeginTx(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = tx.Rollback() }()
			inTx := message.NewMessage(watermill.NewUUID(), []byte("in a transaction"))
			if err := tr.TxPublisher(tx).Publish(topic, inTx); err != nil {
				t.Fatal(err)
			}

			ch := subscribeEphemeral(t, tr, topic)
			later := message.NewMessage(watermill.NewUUID(), []byte("later"))
			if err := tr.Publisher().Publish(topic, later); err != nil {
				t.Fatal(err)
			}
			if b.name == "postgres" {
				// Committed after a transaction that is still open: not
				// yet visible.
				transporttest.ExpectNone(t, ch, 300*time.Millisecond)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			if got := transporttest.ReceiveIDs(t, ch, 2, 10*time.Second); !slices.Equal(got, []string{inTx.UUID, later.UUID}) {
				t.Fatalf("got %v, want the message of the transaction, then the later one %v", got, []string{inTx.UUID, later.UUID})
			}
			transporttest.ExpectNone(t, ch, 200*time.Millisecond)
		})
	}
}

// An ephemeral subscription writes no offsets row and creates no table but
// the topic's own, and ends when its context ends or the transport
// closes.
func TestSubscribeEphemeral_LeavesNothingBehind(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cfg := testConfig(t, b)
			tr := openTransport(t, b, cfg)
			db := rawDB(t, b, cfg)
			topic := "ephleft_" + watermill.NewShortUUID()
			if err := tr.Publisher().Publish(topic, message.NewMessage(watermill.NewUUID(), nil)); err != nil {
				t.Fatal(err)
			}
			tablesBefore := tablesWithPrefix(t, b, db, cfg.TablePrefix)

			ctx, cancel := context.WithCancel(context.Background())
			ch, err := tr.SubscribeEphemeral(ctx, topic)
			if err != nil {
				t.Fatal(err)
			}
			if err := tr.Publisher().Publish(topic, message.NewMessage(watermill.NewUUID(), nil)); err != nil {
				t.Fatal(err)
			}
			transporttest.Receive(t, ch, 10*time.Second)
			cancel()
			for range ch {
			}

			var offsets int
			if err := db.QueryRow("SELECT COUNT(*) FROM " + b.quote(cfg.TablePrefix+"offsets_"+topic)).Scan(&offsets); err != nil {
				t.Fatal(err)
			}
			if offsets != 0 {
				t.Errorf("%d offsets rows written", offsets)
			}
			if after := tablesWithPrefix(t, b, db, cfg.TablePrefix); !slices.Equal(after, tablesBefore) {
				t.Errorf("tables %v, want %v", after, tablesBefore)
			}

			// The transport's Close ends the others.
			open, err := tr.SubscribeEphemeral(context.Background(), topic)
			if err != nil {
				t.Fatal(err)
			}
			if err := tr.Close(); err != nil {
				t.Fatal(err)
			}
			select {
			case _, ok := <-open:
				if ok {
					t.Fatal("message after Close")
				}
			case <-time.After(5 * time.Second):
				t.Fatal("channel still open after Close")
			}
			if _, err := tr.SubscribeEphemeral(context.Background(), topic); !errors.Is(err, transports.ErrClosed) {
				t.Fatalf("SubscribeEphemeral after Close: %v, want an error wrapping transports.ErrClosed", err)
			}
		})
	}
}

func subscribeEphemeral(t *testing.T, tr transports.EphemeralSubscriber, topic string) <-chan *message.Message {
	t.Helper()
	ch, err := tr.SubscribeEphemeral(t.Context(), topic)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// A message neither acked nor nacked within ack_deadline is delivered
// again, and the context of the first delivery ends.
func TestSubscribeEphemeral_UnsettledIsRedeliveredAfterAckDeadline(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cfg := testConfig(t, b)
			cfg.AckDeadline = 300 * time.Millisecond
			tr := openTransport(t, b, cfg)
			topic := "ephdl_" + watermill.NewShortUUID()
			ch := subscribeEphemeral(t, tr, topic)
			m := message.NewMessage(watermill.NewUUID(), []byte("slow"))
			if err := tr.Publisher().Publish(topic, m); err != nil {
				t.Fatal(err)
			}
			first := transporttest.Next(t, ch, 10*time.Second)
			again := transporttest.Receive(t, ch, 10*time.Second)
			if first.UUID != m.UUID || again.UUID != m.UUID {
				t.Fatalf("got %s then %s, want %s twice", first.UUID, again.UUID, m.UUID)
			}
			select {
			case <-first.Context().Done():
			default:
				t.Error("the first delivery's context is still live")
			}
			transporttest.ExpectNone(t, ch, 200*time.Millisecond)
		})
	}
}
