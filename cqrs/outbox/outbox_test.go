package outbox_test

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/cqrs"
	"github.com/millrace/millrace/cqrs/outbox"
	"github.com/millrace/millrace/framework"
)

func TestOutbox_CommitPublishesInOrderRollbackPublishesNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		bk := newBroker(t)
		s := newSvc(t, bk, b, prefix(), "", func(c *outbox.Config) {
			if b.dialect == outbox.Postgres {
				c.PollInterval = time.Hour // only NOTIFY wakes the relay
			}
		})
		got := collect(t, bk, "orders.events")
		s.start(t)
		ctx := context.Background()

		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.ob.PublishMessage(ctx, tx, "orders.events", msgs("rolled-back")...); err != nil {
			t.Fatal(err)
		}
		_ = tx.Rollback()

		want := ids("m", 20)
		tx, err = s.db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.ob.PublishMessage(ctx, tx, "orders.events", msgs(want...)...); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		// PostgreSQL wakes the relay at the commit (it polls only hourly
		// here); MySQL polls (100ms).
		waitFor(t, "the committed messages to be published", 30*time.Second, func() bool { return got.count() == len(want) })
		// Everything published is in order, so a rolled-back message
		// published (it would go first: it was written first) fails here.
		if order := got.order(); !slices.Equal(order, want) {
			t.Errorf("published %v, want %v in order", order, want)
		}
	})
}

func TestOutbox_BrokerDownAtCommitEverythingArrivesOnceItIsBack(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		bk := newBroker(t)
		s := newSvc(t, bk, b, prefix(), "", func(c *outbox.Config) { c.PollInterval = 20 * time.Millisecond })
		got := collect(t, bk, "orders.events")
		s.start(t)
		s.tr.down.Store(true)
		ctx := context.Background()
		want := ids("d", 50)
		for i := 0; i < len(want); i += 10 {
			tx, err := s.db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.ob.PublishMessage(ctx, tx, "orders.events", msgs(want[i:i+10]...)...); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(300 * time.Millisecond)
		if n := got.count(); n != 0 {
			t.Fatalf("%d published while the broker was down", n)
		}
		s.tr.down.Store(false)
		waitFor(t, "every message once the broker is back", 30*time.Second, func() bool { return got.count() == len(want) })
		if d := got.doubled(); len(d) != 0 {
			t.Errorf("published twice: %v", d)
		}
		if order := got.order(); !slices.Equal(order, want) {
			t.Errorf("order %v", order)
		}
	})
}

func TestOutbox_TwoRelaysNothingDoubledNothingLost(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		bk := newBroker(t)
		p := prefix()
		fast := func(c *outbox.Config) { c.PollInterval = 5 * time.Millisecond; c.BatchSize = 7 }
		a, c := newSvc(t, bk, b, p, "", fast), newSvc(t, bk, b, p, "", fast)
		got := collect(t, bk, "orders.events")
		a.start(t)
		c.start(t)
		ctx := context.Background()
		want := ids("r", 300)
		for i := 0; i < len(want); i += 3 {
			w := a
			if i%2 == 1 {
				w = c
			}
			tx, err := w.db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.ob.PublishMessage(ctx, tx, "orders.events", msgs(want[i:i+3]...)...); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "every message", 60*time.Second, func() bool { return got.count() == len(want) })
		time.Sleep(100 * time.Millisecond)
		if d := got.doubled(); len(d) != 0 {
			t.Errorf("%d messages published twice by the two relays: %v", len(d), d[:min(len(d), 5)])
		}
		if a.ob.Stats().Relayed == 0 && c.ob.Stats().Relayed == 0 {
			t.Error("no relay relayed")
		}
	})
}

type PlaceOrder struct {
	ID string `json:"id"`
}

type OrderPlaced struct {
	ID string `json:"id"`
}

// TestInTx_WritesMarkAndMessagesCommitTogether: the handler's row, its
// dedup mark and the event it publishes commit together; a failure rolls
// all three back (and the redelivery runs again); a redelivery of a
// handled command is acked without running the handler.
func TestInTx_WritesMarkAndMessagesCommitTogether(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		bk := newBroker(t)
		p := prefix()
		yaml := `
middleware:
  retry: {max_attempts: 1}
  delayed_retry: {enabled: false}
  poison: {enabled: false}
  breaker: {enabled: false}
  dedup:
    store: ` + b.name + `
    dsn: '` + b.dsn + `'
    table: ` + p + `dedup
`
		s := newSvc(t, bk, b, p, yaml, func(c *outbox.Config) { c.PollInterval = 20 * time.Millisecond })
		table := p + "orders"
		if _, err := s.db.Exec(`CREATE TABLE ` + table + ` (id VARCHAR(64) PRIMARY KEY)`); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_, _ = s.db.Exec(`DROP TABLE IF EXISTS ` + table)
			_, _ = s.db.Exec(`DROP TABLE IF EXISTS ` + p + `dedup`)
		})
		var runs atomic.Int64
		var failOnce atomic.Bool
		failOnce.Store(true)
		cqrs.HandleCommand(s.bus, func(ctx context.Context, c PlaceOrder) error {
			runs.Add(1)
			return s.ob.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
				if _, err := tx.ExecContext(ctx, s.rebind(b, `INSERT INTO `+table+` (id) VALUES (?)`), c.ID); err != nil {
					return err
				}
				if err := outbox.Publish(ctx, tx, s.ob, OrderPlaced{ID: c.ID}); err != nil {
					return err
				}
				if c.ID == "o-2" && failOnce.CompareAndSwap(true, false) {
					return errors.New("payment declined, this once")
				}
				return nil
			})
		})
		got := collect(t, bk, "OrderPlaced")
		s.start(t)
		ctx := context.Background()
		for _, id := range []string{"o-1", "o-2", "o-1"} {
			if err := cqrs.Send(ctx, s.bus, PlaceOrder{ID: id}, framework.WithID("cmd-"+id)); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "both orders placed", 30*time.Second, func() bool { return got.count() == 2 })
		time.Sleep(200 * time.Millisecond)
		var rows int
		if err := s.db.QueryRow(`SELECT COUNT(*) FROM ` + table).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		if rows != 2 {
			t.Errorf("%d order rows, want 2 (each once)", rows)
		}
		// o-1 once (its redelivery is a duplicate), o-2 twice (failed once).
		if n := runs.Load(); n != 3 {
			t.Errorf("handler ran %d times, want 3", n)
		}
		if d := got.doubled(); len(d) != 0 {
			t.Errorf("events published twice: %v", d)
		}
	})
}

// rebind turns ? placeholders into PostgreSQL's $n.
func (s *svc) rebind(b backend, q string) string {
	if b.dialect != outbox.Postgres {
		return q
	}
	var out strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			out.WriteString("$" + itoa(n))
			continue
		}
		out.WriteRune(r)
	}
	return out.String()
}

func TestInTx_WithoutAnSQLDedupStoreIsAPermanentError(t *testing.T) {
	b := backends[0]
	bk := newBroker(t)
	s := newSvc(t, bk, b, prefix(), "middleware:\n  retry: {max_attempts: 1}\n  delayed_retry: {enabled: false}\n", nil)
	var err error
	done := make(chan struct{})
	cqrs.HandleCommand(s.bus, func(ctx context.Context, c PlaceOrder) error {
		err = s.ob.InTx(ctx, func(context.Context, *sql.Tx) error { return nil })
		close(done)
		return err
	})
	s.start(t)
	if err := cqrs.Send(context.Background(), s.bus, PlaceOrder{ID: "x"}); err != nil {
		t.Fatal(err)
	}
	<-done
	if !errors.Is(err, outbox.ErrInboxStore) || !millrace.IsPermanent(err) {
		t.Errorf("InTx = %v, want a permanent ErrInboxStore", err)
	}
}

func TestOutbox_BacklogAndLag(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		bk := newBroker(t)
		s := newSvc(t, bk, b, prefix(), "", func(c *outbox.Config) { c.Relay = false })
		ctx := context.Background()
		if n, age, err := s.ob.Backlog(ctx); err != nil || n != 0 || age != 0 {
			t.Fatalf("empty outbox: %d, %v, %v", n, age, err)
		}
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.ob.PublishMessage(ctx, tx, "t", msgs("a", "b", "c")...); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		n, age, err := s.ob.Backlog(ctx)
		if err != nil || n != 3 || age < 40*time.Millisecond || age > time.Minute {
			t.Errorf("backlog %d, lag %v, %v: want 3 waiting for about 50ms", n, age, err)
		}
	})
}

func TestRelay_SlowBrokerHalvesTheBatchInsteadOfRepublishing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		bk := newBroker(t)
		s := newSvc(t, bk, b, prefix(), "", func(c *outbox.Config) {
			c.BatchSize = 64
			c.PublishTimeout = 100 * time.Millisecond
			c.PollInterval = 20 * time.Millisecond
		})
		s.tr.slowFor = 150 * time.Millisecond
		s.tr.slowAbove.Store(8) // more than 8 at once: no confirm in time
		got := collect(t, bk, "orders.events")
		want := ids("s", 64)
		ctx := context.Background()
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.ob.PublishMessage(ctx, tx, "orders.events", msgs(want...)...); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		s.start(t)
		waitFor(t, "every message in batches the broker confirms in time", 60*time.Second, func() bool { return got.count() == len(want) })
		if d := got.doubled(); len(d) != 0 {
			t.Errorf("published twice: %v", d)
		}
		if order := got.order(); !slices.Equal(order, want) {
			t.Errorf("order %v", order)
		}
	})
}

func TestInTx_PanicRollsBackAndReleasesTheConnection(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		bk := newBroker(t)
		s := newSvc(t, bk, b, prefix(), "", nil)
		ctx := context.Background()
		func() {
			defer func() {
				if recover() == nil {
					t.Fatal("the panic did not reach the caller")
				}
			}()
			_ = s.ob.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
				if err := s.ob.PublishMessage(ctx, tx, "orders.events", msgs("p-1")...); err != nil {
					t.Fatal(err)
				}
				panic("handler bug")
			})
		}()
		if n := s.db.Stats().InUse; n != 0 {
			t.Errorf("%d connections still in use after the panic", n)
		}
		if n, _, err := s.ob.Backlog(ctx); err != nil || n != 0 {
			t.Errorf("backlog after the panic: %d, %v; want 0 (rolled back)", n, err)
		}
	})
}

func TestNew_TwoOutboxesOnOneApp(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		bk := newBroker(t)
		p := prefix()
		s := newSvc(t, bk, b, p, "", nil)
		other := prefix()
		c := outbox.DefaultConfig(b.dialect)
		c.TablePrefix = other
		dropLater(t, b, s.db, other)
		if _, err := outbox.New(context.Background(), s.bus, s.db, c); err != nil {
			t.Fatalf("a second outbox on other tables: %v", err)
		}
		c.TablePrefix = p
		_, err := outbox.New(context.Background(), s.bus, s.db, c)
		if err == nil || !strings.Contains(err.Error(), p+"outbox") {
			t.Fatalf("a second outbox on the same table: %v, want an error naming the table", err)
		}
	})
}

func TestCleanup_DeletesInChunksUntilCaughtUp(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		bk := newBroker(t)
		p := prefix()
		s := newSvc(t, bk, b, p, "", func(c *outbox.Config) {
			c.Retention = time.Millisecond
			c.CleanupInterval = time.Hour // only the explicit cleanup below
		})
		got := collect(t, bk, "orders.events")
		s.start(t)
		ctx := context.Background()
		want := ids("c", 25)
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.ob.PublishMessage(ctx, tx, "orders.events", msgs(want...)...); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the messages to be relayed", 30*time.Second, func() bool { return got.count() == len(want) })
		table := p + "outbox"
		var sent int
		waitFor(t, "the messages to be marked sent", 30*time.Second, func() bool {
			if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table).Scan(&sent); err != nil {
				t.Fatal(err)
			}
			n, _, err := s.ob.Backlog(ctx)
			return err == nil && n == 0 && sent == len(want)
		})
		time.Sleep(5 * time.Millisecond) // past Retention
		defer outbox.SetCleanupChunk(10)()
		if err := s.ob.CleanupNow(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table).Scan(&sent); err != nil {
			t.Fatal(err)
		}
		if sent != 0 {
			t.Errorf("%d sent messages left after one cleanup in chunks of 10, want 0", sent)
		}
	})
}
