package sql_test

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/millrace/millrace/cqrs/eventstore"
	sqlstore "github.com/millrace/millrace/cqrs/eventstore/sql"
)

func one(typ string) []eventstore.Event {
	return []eventstore.Event{{Type: typ, Payload: []byte(typ)}}
}

func TestStore_AppendTxStoresEventsIfAndOnlyIfTheTransactionCommits(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		db := b.open(t)
		s := b.newStore(t, db)
		ctx := t.Context()

		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.AppendTx(ctx, tx, "order-1", eventstore.NoStream, one("Placed")); err != nil {
			t.Fatal(err)
		}
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		if got := readStream(t, s, "order-1"); len(got) != 0 {
			t.Fatalf("rolled back append left %d events", len(got))
		}

		// A conflict leaves the transaction usable: the right version
		// appends and commits.
		if _, err := s.Append(ctx, "order-1", eventstore.NoStream, one("Placed")); err != nil {
			t.Fatal(err)
		}
		tx, err = db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback() }()
		_, err = s.AppendTx(ctx, tx, "order-1", eventstore.NoStream, one("Placed again"))
		var ce *eventstore.ConflictError
		if !errors.As(err, &ce) || ce.Actual != 1 {
			t.Fatalf("AppendTx at NoStream of a stream at 1: %v, want a conflict with actual 1", err)
		}
		es := one("Paid")
		if v, err := s.AppendTx(ctx, tx, "order-1", ce.Actual, es); err != nil || v != 2 {
			t.Fatalf("AppendTx after the conflict: %d, %v", v, err)
		}
		if es[0].Version != 2 || es[0].StreamID != "order-1" || es[0].ID == "" || es[0].RecordedAt.IsZero() {
			t.Errorf("AppendTx did not set the event's fields: %+v", es[0])
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		got := readStream(t, s, "order-1")
		if len(got) != 2 || got[1].Type != "Paid" || got[1].ID != es[0].ID || got[1].Position != es[0].Position {
			t.Fatalf("after commit: %+v", got)
		}
	})
}

// TestStore_ReadAllDoesNotPassARunningAppend holds an append open in a
// transaction while a later one commits: on PostgreSQL ReadAll shows
// neither until the first one ends; on MySQL the later append waits for
// the first. Either way a reader never gets the later one first.
func TestStore_ReadAllDoesNotPassARunningAppend(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		db := b.open(t)
		s := b.newStore(t, db)
		ctx := t.Context()

		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback() }()
		first := one("First")
		if _, err := s.AppendTx(ctx, tx, "a", eventstore.Any, first); err != nil {
			t.Fatal(err)
		}
		later := make(chan error, 1)
		go func() {
			_, err := s.Append(ctx, "b", eventstore.Any, one("Later"))
			later <- err
		}()
		if b.dialect == sqlstore.Postgres {
			if err := <-later; err != nil {
				t.Fatal(err)
			}
		}
		for range 20 {
			got, err := s.ReadAll(ctx, eventstore.Start, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 0 {
				t.Fatalf("ReadAll while the first append runs: %s", got[0].Type)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if b.dialect == sqlstore.MySQL {
			select {
			case err := <-later:
				t.Fatalf("the later append did not wait for the running one: %v", err)
			default:
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if b.dialect == sqlstore.MySQL {
			if err := <-later; err != nil {
				t.Fatal(err)
			}
		}
		got := readAllN(t, s, 2)
		if got[0].Type != "First" || got[1].Type != "Later" || got[0].Position != first[0].Position {
			t.Fatalf("ReadAll: %s at %v, %s at %v; want First (at %v), then Later", got[0].Type, got[0].Position, got[1].Type, got[1].Position, first[0].Position)
		}
	})
}

// TestStore_FailedBatchStoresNothing makes the database refuse the middle
// event of a batch (a trigger): nothing of the batch is stored, and the
// stream and the global order go on as if it had never been tried.
func TestStore_FailedBatchStoresNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		db := b.open(t)
		s := b.newStore(t, db)
		ctx := t.Context()
		refuseBoom(t, b, db, s)
		if _, err := s.Append(ctx, "s", eventstore.NoStream, one("Opened")); err != nil {
			t.Fatal(err)
		}
		batch := []eventstore.Event{{Type: "Fine"}, {Type: "Boom"}, {Type: "Fine"}}
		for _, expected := range []int64{1, eventstore.Any} {
			if _, err := s.Append(ctx, "s", expected, batch); err == nil {
				t.Fatal("the batch with a refused event was appended")
			}
			if _, err := s.Append(ctx, "new", eventstore.NoStream, batch); err == nil {
				t.Fatal("the batch with a refused event was appended to a new stream")
			}
		}
		if got := readStream(t, s, "s"); len(got) != 1 {
			t.Fatalf("stream has %d events, want 1", len(got))
		}
		if got := readStream(t, s, "new"); len(got) != 0 {
			t.Fatalf("new stream has %d events, want none", len(got))
		}
		if v, err := s.Append(ctx, "s", 1, []eventstore.Event{{Type: "Fine"}, {Type: "Fine"}}); err != nil || v != 3 {
			t.Fatalf("append after the refused ones: %d, %v; want 3", v, err)
		}
		if v, err := s.Append(ctx, "new", eventstore.NoStream, one("Fine")); err != nil || v != 1 {
			t.Fatalf("append to the new stream: %d, %v; want 1", v, err)
		}
		got := readAllN(t, s, 4)
		if b.dialect == sqlstore.MySQL {
			for i, e := range got {
				if e.Position.Seq != int64(i+1) {
					t.Errorf("event %d at %v: the refused appends left a gap", i, e.Position)
				}
			}
		}
	})
}

// refuseBoom adds a trigger to s's events table that refuses events of
// type Boom.
func refuseBoom(t *testing.T, b backend, db *sql.DB, s *sqlstore.Store) {
	t.Helper()
	ctx := t.Context()
	events := b.quote(s.TablePrefix() + "events")
	var ddl []string
	if b.dialect == sqlstore.Postgres {
		fn := b.quote(s.TablePrefix() + "refuse_boom")
		ddl = []string{
			`CREATE FUNCTION ` + fn + `() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.type = 'Boom' THEN RAISE EXCEPTION 'boom refused'; END IF;
	RETURN NEW;
END $$`,
			`CREATE TRIGGER refuse_boom BEFORE INSERT ON ` + events + ` FOR EACH ROW EXECUTE FUNCTION ` + fn + `()`,
		}
		t.Cleanup(func() { _, _ = db.ExecContext(context.Background(), "DROP FUNCTION IF EXISTS "+fn+" CASCADE") })
	} else {
		ddl = []string{"CREATE TRIGGER " + b.quote(s.TablePrefix()+"refuse_boom") + " BEFORE INSERT ON " + events +
			" FOR EACH ROW BEGIN IF NEW.type = 'Boom' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'boom refused'; END IF; END"}
	}
	for _, q := range ddl {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}

}

// TestStore_RefusedCallOfAMergedAppendFailsAlone has concurrent appends
// merged while some of them carry an event the database refuses: those
// fail, every other one is stored.
func TestStore_RefusedCallOfAMergedAppendFailsAlone(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		db := b.open(t)
		s := b.newStore(t, db)
		refuseBoom(t, b, db, s)
		const writers, rounds = 32, 5
		var wg sync.WaitGroup
		errs := make([][]error, writers)
		for w := range writers {
			errs[w] = make([]error, rounds)
			wg.Go(func() {
				stream := "w" + strconv.Itoa(w)
				version := int64(0)
				for r := range rounds {
					es := one("Fine")
					if (w+r)%7 == 0 {
						es = append(es, eventstore.Event{Type: "Boom"})
					}
					v, err := s.Append(t.Context(), stream, version, es)
					errs[w][r] = err
					if err == nil {
						version = v
					}
				}
			})
		}
		wg.Wait()
		for w := range writers {
			stored := 0
			for r, err := range errs[w] {
				switch boom := (w+r)%7 == 0; {
				case boom && err == nil:
					t.Errorf("writer %d round %d: the batch with a refused event was stored", w, r)
				case !boom && err != nil:
					t.Errorf("writer %d round %d: %v", w, r, err)
				case !boom:
					stored++
				}
			}
			got := readStream(t, s, "w"+strconv.Itoa(w))
			if len(got) != stored {
				t.Errorf("writer %d: stream has %d events, want %d", w, len(got), stored)
			}
			for _, e := range got {
				if e.Type != "Fine" {
					t.Errorf("writer %d: stored a %s", w, e.Type)
				}
			}
		}
	})
}

func readStream(t *testing.T, s eventstore.Store, stream string) []eventstore.Event {
	t.Helper()
	es, err := s.ReadStream(t.Context(), stream, 1, eventstore.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// readAllN reads the store from the start until it has n events, and
// fails if there are more.
func readAllN(t *testing.T, s eventstore.Store, n int) []eventstore.Event {
	t.Helper()
	var out []eventstore.Event
	after := eventstore.Start
	for deadline := time.Now().Add(30 * time.Second); len(out) < n; {
		page, err := s.ReadAll(t.Context(), after, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d events readable after 30s", len(out), n)
			}
			time.Sleep(5 * time.Millisecond)
			continue
		}
		out = append(out, page...)
		after = page[len(page)-1].Position
	}
	if len(out) != n {
		t.Fatalf("ReadAll: %d events, want %d", len(out), n)
	}
	return out
}
