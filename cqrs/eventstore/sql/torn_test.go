package sql_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/millrace/millrace/cqrs/eventstore"
	sqlstore "github.com/millrace/millrace/cqrs/eventstore/sql"
)

// A torn read view on MySQL: InnoDB copies the set of running transactions
// without stopping commits, so a read can see an append without an earlier
// one that had committed as well. The tests below make the state such a
// view shows by hand: the earlier append still running (holding its lock,
// its rows uncommitted), the later one's rows committed.

func mysqlBackend(t *testing.T) backend {
	for _, b := range backends {
		if b.dialect == sqlstore.MySQL {
			return b
		}
	}
	t.Fatal("no MySQL backend")
	return backend{}
}

func insertEventRow(t *testing.T, ctx context.Context, q interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, s *sqlstore.Store, seq int64, stream string, version int64) {
	t.Helper()
	_, err := q.ExecContext(ctx, "INSERT INTO `"+s.TablePrefix()+"events` "+
		"(seq, stream_id, version, event_id, type, content_type, payload, metadata, recorded_at) "+
		"VALUES (?, ?, ?, ?, 'Torn', '', '', '{}', UTC_TIMESTAMP(6))", seq, stream, version, stream+"-"+string(rune('0'+version)))
	if err != nil {
		t.Fatal(err)
	}
}

func TestStore_MySQLReadAllWaitsOutAGapInTheSequence(t *testing.T) {
	b := mysqlBackend(t)
	db := b.open(t)
	s := b.newStore(t, db)
	ctx := t.Context()
	if _, err := s.Append(ctx, "x", eventstore.NoStream, []eventstore.Event{{Type: "A"}, {Type: "B"}}); err != nil {
		t.Fatal(err)
	}
	// The earlier append: holds the sequence at 2, has written event 3.
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, "SELECT seq FROM `"+s.TablePrefix()+"sequence` WHERE id = 1 FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	insertEventRow(t, ctx, tx, s, 3, "earlier", 1)
	// The later one, visible: event 4.
	insertEventRow(t, ctx, db, s, 4, "later", 1)

	after := eventstore.Position{Seq: 2}
	type result struct {
		events []eventstore.Event
		err    error
	}
	done := make(chan result, 1)
	go func() {
		es, err := s.ReadAll(ctx, after, 10)
		done <- result{es, err}
	}()
	select {
	case r := <-done:
		t.Fatalf("ReadAll after 2 returned %d events (%v) while event 3 was not committed", len(r.events), r.err)
	case <-time.After(200 * time.Millisecond):
	}
	if _, err := tx.ExecContext(ctx, "UPDATE `"+s.TablePrefix()+"sequence` SET seq = 4 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if len(r.events) != 2 || r.events[0].Position.Seq != 3 || r.events[1].Position.Seq != 4 {
		t.Fatalf("ReadAll after 2: %v, want events 3 and 4", r.events)
	}
	// With events after a gap, ReadAll returns the events before it.
	insertEventRow(t, ctx, db, s, 6, "after-gap", 1)
	got, err := s.ReadAll(ctx, eventstore.Start, 10)
	if err != nil || len(got) != 4 {
		t.Fatalf("ReadAll from the start: %d events, %v; want 1 to 4", len(got), err)
	}
}

func TestStore_MySQLReadStreamWaitsOutAGapInTheVersions(t *testing.T) {
	b := mysqlBackend(t)
	db := b.open(t)
	s := b.newStore(t, db)
	ctx := t.Context()
	if _, err := s.Append(ctx, "z", eventstore.NoStream, []eventstore.Event{{Type: "A"}}); err != nil {
		t.Fatal(err)
	}
	// The earlier append holds the stream's row and has written version
	// 2; version 3, appended after it, is visible.
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, "UPDATE `"+s.TablePrefix()+"streams` SET version = 3 WHERE stream_id = 'z'"); err != nil {
		t.Fatal(err)
	}
	insertEventRow(t, ctx, tx, s, 100, "z", 2)
	insertEventRow(t, ctx, db, s, 101, "z", 3)

	type result struct {
		events []eventstore.Event
		err    error
	}
	done := make(chan result, 1)
	go func() {
		es, err := s.ReadStream(ctx, "z", 1, eventstore.ReadOptions{})
		done <- result{es, err}
	}()
	select {
	case r := <-done:
		t.Fatalf("ReadStream returned %d events (%v) while version 2 was not committed", len(r.events), r.err)
	case <-time.After(200 * time.Millisecond):
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if len(r.events) != 3 {
		t.Fatalf("ReadStream: %d events, want versions 1 to 3", len(r.events))
	}
	for i, e := range r.events {
		if e.Version != int64(i+1) {
			t.Fatalf("ReadStream: event %d has version %d", i, e.Version)
		}
	}
}
