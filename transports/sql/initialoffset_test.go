package sql_test

import (
	stdsql "database/sql"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	sqltransport "github.com/millrace/millrace/transports/sql"
	"github.com/millrace/millrace/transports/transporttest"
)

// A new consumer group starts where initial_offset says: with the oldest
// message of the topic, or with what is published after it subscribed (or
// was prepared with SubscribeInitialize). A group that has an offset keeps
// it, and its delayed messages are delivered either way.
func TestInitialOffset_WhereANewGroupStarts(t *testing.T) {
	for _, b := range backends {
		for _, initial := range []string{sqltransport.Oldest, sqltransport.Newest} {
			t.Run(b.name+"/"+initial, func(t *testing.T) {
				cfg := testConfig(t, b)
				cfg.InitialOffset = initial
				tr := openTransport(t, b, cfg)
				topic := "initial_" + watermill.NewShortUUID()
				publish := func(payload string) *message.Message {
					t.Helper()
					m := message.NewMessage(watermill.NewUUID(), []byte(payload))
					if err := tr.Publisher().Publish(topic, m); err != nil {
						t.Fatal(err)
					}
					return m
				}
				old := publish("before any group")
				if b.name == "postgres" {
					// A newest group may also get what committed just
					// before it, while an older transaction (of any
					// client of the server) still ran; not what was
					// visible already.
					waitBelowXmin(t, rawDB(t, b, cfg), cfg.TablePrefix+topic, old.UUID)
				}

				// Group "live" subscribes, group "prepared" is only
				// prepared; both are new.
				liveSub, err := tr.Subscriber("live")
				if err != nil {
					t.Fatal(err)
				}
				live := transporttest.Subscribe(t, t.Context(), liveSub, topic)
				prepared, err := tr.Subscriber("prepared")
				if err != nil {
					t.Fatal(err)
				}
				if err := prepared.(message.SubscribeInitializer).SubscribeInitialize(topic); err != nil {
					t.Fatal(err)
				}
				if initial == sqltransport.Oldest {
					// Received before publishing again: on MySQL an
					// unacked message of a group that caught up makes
					// inserts wait (see the package documentation).
					if got := transporttest.Receive(t, live, 10*time.Second); got.UUID != old.UUID {
						t.Fatalf("group live got %q first, want the oldest message", got.Payload)
					}
				}
				after := publish("after")
				if got := transporttest.Receive(t, live, 10*time.Second); got.UUID != after.UUID {
					t.Fatalf("group live got %q, want the message published after it subscribed", got.Payload)
				}
				transporttest.ExpectNone(t, live, 300*time.Millisecond)
				if err := liveSub.Close(); err != nil {
					t.Fatal(err)
				}

				delayed := message.NewMessage(watermill.NewUUID(), []byte("delayed"))
				if err := tr.Delay(t.Context(), topic, "prepared", delayed, 0); err != nil {
					t.Fatal(err)
				}
				want := []string{old.UUID, after.UUID, delayed.UUID}
				if initial == sqltransport.Newest {
					want = want[1:]
				}
				ch := transporttest.Subscribe(t, t.Context(), prepared, topic)
				got := map[string]bool{}
				for range want {
					got[transporttest.Receive(t, ch, 10*time.Second).UUID] = true
				}
				for _, id := range want {
					if !got[id] {
						t.Errorf("group prepared did not get %s (got %v)", id, got)
					}
				}
				transporttest.ExpectNone(t, ch, 300*time.Millisecond)
				if err := prepared.Close(); err != nil {
					t.Fatal(err)
				}

				// The groups exist now: a transport whose initial_offset
				// is the other value goes on from their offsets.
				other := cfg
				other.InitialOffset = sqltransport.Oldest
				if initial == sqltransport.Oldest {
					other.InitialOffset = sqltransport.Newest
				}
				later := publish("later")
				again := transporttest.SubscribeGroup(t, openTransport(t, b, other), "live", topic)
				if got := transporttest.Receive(t, again, 10*time.Second); got.UUID != later.UUID {
					t.Fatalf("existing group got %q, want the one message it had not received", got.Payload)
				}
			})
		}
	}
}

// waitBelowXmin waits until the PostgreSQL row of message id in table is
// older than every running transaction: visible to every reader, and
// before the position initial_offset newest starts at.
func waitBelowXmin(t *testing.T, db *stdsql.DB, table, id string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var below bool
		err := db.QueryRow(`SELECT transaction_id < pg_snapshot_xmin(pg_current_snapshot()) FROM "`+table+`" WHERE uuid = $1`, id).Scan(&below)
		if err != nil {
			t.Fatal(err)
		}
		if below {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("message %s still not below xmin after a minute", id)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
