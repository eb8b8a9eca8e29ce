package sql

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/millrace/millrace/cqrs/eventstore"
)

var internalBackends = []struct {
	dialect Dialect
	driver  string
	dsn     string
}{
	{Postgres, "pgx", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"},
	{MySQL, "mysql", "root@tcp(127.0.0.1:3306)/test?interpolateParams=true"},
}

// internalStore returns a store of d on fresh tables, dropped when t ends.
func internalStore(t *testing.T, d Dialect) *Store {
	t.Helper()
	for _, b := range internalBackends {
		if b.dialect != d {
			continue
		}
		db, err := sql.Open(b.driver, b.dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		if err := db.PingContext(ctx); err != nil {
			t.Skipf("%v not reachable: %v", d, err)
		}
		var r [6]byte
		_, _ = rand.Read(r[:])
		s, err := New(db, d, TablePrefix("es_gc_"+hex.EncodeToString(r[:])+"_"))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.CreateSchema(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			for _, table := range []string{"events", "streams", "snapshots", "sequence"} {
				q := `DROP TABLE IF EXISTS "` + s.prefix + table + `"`
				if d == MySQL {
					q = "DROP TABLE IF EXISTS `" + s.prefix + table + "`"
				}
				_, _ = db.ExecContext(context.Background(), q)
			}
		})
		return s
	}
	t.Fatalf("no backend for %v", d)
	return nil
}

// waitingCalls returns how many calls wait in the next group.
func (a *appender) waitingCalls() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.next == nil {
		return 0
	}
	return len(a.next.calls)
}

func TestAppender_CallsWaitingTogetherAreStoredTogetherWithTheirOwnOutcomes(t *testing.T) {
	for _, d := range []Dialect{Postgres, MySQL} {
		t.Run(d.String(), func(t *testing.T) {
			s := internalStore(t, d)
			ctx := t.Context()
			if _, err := s.Append(ctx, "taken", eventstore.NoStream, []eventstore.Event{{Type: "A"}}); err != nil {
				t.Fatal(err)
			}
			// As if an append ran: the calls gather in the next group.
			s.group.mu.Lock()
			s.group.running = true
			s.group.mu.Unlock()

			type call struct {
				stream   string
				expected int64
				events   int
				conflict bool
				first    int64 // the version of its first event
			}
			calls := []call{
				{"new-1", eventstore.NoStream, 2, false, 1},
				{"taken", eventstore.NoStream, 1, true, 0},
				{"new-2", eventstore.Any, 3, false, 1},
				{"missing", 4, 1, true, 0},
				{"new-3", eventstore.NoStream, 1, false, 1},
				{"shared", eventstore.Any, 1, false, 2},
			}
			var wg sync.WaitGroup
			results := make([][]eventstore.Event, len(calls))
			errs := make([]error, len(calls))
			for i, c := range calls {
				results[i] = make([]eventstore.Event, c.events)
				for j := range results[i] {
					results[i][j] = eventstore.Event{Type: "E", Payload: []byte(c.stream + strconv.Itoa(j))}
				}
				wg.Go(func() { _, errs[i] = s.Append(ctx, c.stream, c.expected, results[i]) })
			}
			for s.group.waitingCalls() < len(calls) {
				time.Sleep(time.Millisecond)
			}
			// A second call to a stream that has one waiting runs on its
			// own, at once.
			if _, err := s.Append(ctx, "shared", eventstore.Any, []eventstore.Event{{Type: "B"}}); err != nil {
				t.Fatal(err)
			}
			s.group.finish(s)
			wg.Wait()

			var tx uint64
			for i, c := range calls {
				var ce *eventstore.ConflictError
				if c.conflict {
					if !errors.As(errs[i], &ce) {
						t.Errorf("%s at %d: %v, want a conflict", c.stream, c.expected, errs[i])
					}
					continue
				}
				if errs[i] != nil {
					t.Fatalf("%s at %d: %v", c.stream, c.expected, errs[i])
				}
				for j, e := range results[i] {
					if e.StreamID != c.stream || e.Version != c.first+int64(j) {
						t.Errorf("%s event %d: stream %q version %d", c.stream, j, e.StreamID, e.Version)
					}
				}
				if tx == 0 {
					tx = results[i][0].Position.Tx
				} else if results[i][0].Position.Tx != tx {
					t.Errorf("%s stored in tx %d, the group's first call in %d: not one statement", c.stream, results[i][0].Position.Tx, tx)
				}
			}
			for _, stream := range []string{"taken", "missing"} {
				es, err := s.ReadStream(ctx, stream, 1, eventstore.ReadOptions{})
				if err != nil || len(es) > 1 {
					t.Errorf("refused call to %s stored: %d events, %v", stream, len(es), err)
				}
			}
			s.group.mu.Lock()
			running := s.group.running
			s.group.mu.Unlock()
			if running {
				t.Error("the appender still runs after the group")
			}
		})
	}
}

func TestAppender_CallThatGivesUpBeforeItsGroupStartsStoresNothing(t *testing.T) {
	s := internalStore(t, Postgres)
	s.group.mu.Lock()
	s.group.running = true
	s.group.mu.Unlock()
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := s.Append(ctx, "s", eventstore.Any, []eventstore.Event{{Type: "A"}})
		errc <- err
	}()
	for s.group.waitingCalls() < 1 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Append: %v, want context.Canceled", err)
	}
	s.group.finish(s)
	for {
		s.group.mu.Lock()
		running := s.group.running
		s.group.mu.Unlock()
		if !running {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if es, err := s.ReadStream(t.Context(), "s", 1, eventstore.ReadOptions{}); err != nil || len(es) != 0 {
		t.Fatalf("the call that gave up stored %d events, %v", len(es), err)
	}
}

// A call whose context ends while its group runs returns at once, with its
// context's error, instead of waiting for the group (here held by a lock
// on the streams table); the others of the group get their outcome.
func TestAppender_CallThatGivesUpWhileItsGroupRunsReturnsAtOnce(t *testing.T) {
	s := internalStore(t, Postgres)
	s.group.mu.Lock()
	s.group.running = true
	s.group.mu.Unlock()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	errA, errB := make(chan error, 1), make(chan error, 1)
	go func() {
		_, err := s.Append(ctx, "a", eventstore.Any, []eventstore.Event{{Type: "A"}})
		errA <- err
	}()
	go func() {
		_, err := s.Append(t.Context(), "b", eventstore.Any, []eventstore.Event{{Type: "B"}})
		errB <- err
	}()
	for s.group.waitingCalls() < 2 {
		time.Sleep(time.Millisecond)
	}
	lock, err := s.db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lock.Rollback() }()
	if _, err := lock.ExecContext(t.Context(), `LOCK TABLE "`+s.prefix+`streams" IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	s.group.finish(s) // the group starts, and waits for the lock
	for {
		s.group.mu.Lock()
		started := s.group.next == nil
		s.group.mu.Unlock()
		if started {
			break
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // let it reach the lock (not an assertion)
	cancel()
	select {
	case err := <-errA:
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "outcome is unknown") {
			t.Errorf("Append that gave up = %v, want context.Canceled, its outcome unknown", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the call that gave up waited for its group")
	}
	_ = lock.Rollback()
	if err := <-errB; err != nil {
		t.Errorf("the other call of the group: %v", err)
	}
}
