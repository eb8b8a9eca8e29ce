package sql_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/transports"
	sqltransport "github.com/millrace/millrace/transports/sql"
	"github.com/millrace/millrace/transports/transporttest"
)

// TestBacklog_CountsTheRowsBehindTheGroup publishes 5 messages and
// consumes none: a new group's backlog is 5 with initial_offset oldest and
// 0 with newest, and the topic holds 5. The group then reads and acks all
// 5 and stops: 0 behind; 3 more published: 3 behind, 8 held; a delayed
// message once due: 4 behind. A topic without a table holds none.
func TestBacklog_CountsTheRowsBehindTheGroup(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cfg := testConfig(t, b)
			tr := openTransport(t, b, cfg)
			newestCfg := cfg
			newestCfg.InitialOffset = sqltransport.Newest
			newest := openTransport(t, b, newestCfg)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			topic := "backlog_" + watermill.NewShortUUID()
			publish := func(n int) {
				t.Helper()
				for i := range n {
					if err := tr.Publisher().Publish(topic, message.NewMessage(watermill.NewUUID(), []byte(fmt.Sprint(i)))); err != nil {
						t.Fatal(err)
					}
				}
			}
			backlog := func(tr *sqltransport.Transport, topic, group string) int64 {
				t.Helper()
				n, err := tr.Backlog(ctx, topic, group)
				if err != nil {
					t.Fatalf("Backlog(%s, %q): %v", topic, group, err)
				}
				return n
			}
			check := func(when string, tr *sqltransport.Transport, topic, group string, want int64) {
				t.Helper()
				if got := backlog(tr, topic, group); got != want {
					t.Errorf("%s: Backlog(%s, %q) = %d, want %d", when, topic, group, got, want)
				}
			}

			publish(5)
			check("new group, oldest", tr, topic, "g", 5)
			check("new group, newest", newest, topic, "g", 0)
			check("topic", tr, topic, "", 5)
			check("no table", tr, "nothing_"+watermill.NewShortUUID(), "g", 0)
			check("no table", tr, "nothing_"+watermill.NewShortUUID(), "", 0)

			sub, err := tr.Subscriber("g")
			if err != nil {
				t.Fatal(err)
			}
			msgs, err := sub.Subscribe(ctx, topic)
			if err != nil {
				t.Fatal(err)
			}
			transporttest.ReceiveIDs(t, msgs, 5, 20*time.Second)
			if err := sub.Close(); err != nil { // settles the acked batch
				t.Fatal(err)
			}
			check("all acked", tr, topic, "g", 0)
			publish(3)
			check("3 published since", tr, topic, "g", 3)
			check("topic", tr, topic, "", 8)

			if err := tr.Delay(ctx, topic, "g", message.NewMessage(watermill.NewUUID(), []byte("later")), time.Millisecond); err != nil {
				t.Fatal(err)
			}
			var got int64
			for ctx.Err() == nil {
				if got = backlog(tr, topic, "g"); got == 4 {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if got != 4 {
				t.Errorf("Backlog with a delayed message due = %d, want 4", got)
			}
		})
	}
}

// CheckHealth pings the database: nil while it answers, an error once the
// context ends, and one wrapping transports.ErrClosed after Close; bad
// names fail Backlog naming what is wrong.
func TestCheckHealth_PingsTheDatabase(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			tr := openTransport(t, b, testConfig(t, b))
			if err := tr.CheckHealth(t.Context()); err != nil {
				t.Fatalf("CheckHealth: %v", err)
			}
			ended, cancel := context.WithCancel(context.Background())
			cancel()
			if err := tr.CheckHealth(ended); err == nil {
				t.Error("CheckHealth with an ended context: nil, want an error")
			}
			if _, err := tr.Backlog(t.Context(), "t", "bad group"); err == nil {
				t.Error(`Backlog of group "bad group": nil error, want one naming the group`)
			}
			if _, err := tr.Backlog(t.Context(), "", "g"); err == nil {
				t.Error(`Backlog of topic "": nil error, want one`)
			}
			if err := tr.Close(); err != nil {
				t.Fatal(err)
			}
			if err := tr.CheckHealth(t.Context()); !errors.Is(err, transports.ErrClosed) {
				t.Errorf("CheckHealth after Close: %v, want an error wrapping transports.ErrClosed", err)
			}
			if _, err := tr.Backlog(t.Context(), "t", "g"); !errors.Is(err, transports.ErrClosed) {
				t.Errorf("Backlog after Close: %v, want an error wrapping transports.ErrClosed", err)
			}
		})
	}
}
