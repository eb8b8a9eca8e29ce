package sql_test

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/cqrs/eventstore"
	sqlstore "github.com/millrace/millrace/cqrs/eventstore/sql"
)

// benchWriters is how many goroutines append at once.
const benchWriters = 32

// BenchmarkStore measures, per database, appends of single events and of
// 100-event batches from 32 writers (each to a stream of its own, with
// the expected version, as command handlers append), reads of the global
// order, and, as the ceiling the appends are bounded by, plain INSERTs of
// as many rows per statement from as many writers into a table with
// nothing but a key. Each reports events/s (rows/s for the ceilings).
// Then what is built on the store: the lag of a projection (package
// projection) from an event's commit to the commit that applied it, p50
// and p99, while 32 writers append single events as fast as they can and
// at 1,000 events/s; and the time to load an
// aggregate (package aggregate) of 10,000 events from its events alone and
// from a snapshot taken every 100 events, beside one of 1,000 events with
// the same snapshots (a load from a snapshot costs the same however long
// the stream):
//
//	go test -run '^$' -bench . ./cqrs/eventstore/sql
func BenchmarkStore(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			db := be.open(b)
			warmUp(b, be, db)
			s := be.newStore(b, db)
			b.Run("Append1x32", func(b *testing.B) { benchAppend(b, s, 1) })
			b.Run("Append100x32", func(b *testing.B) { benchAppend(b, s, 100) })
			b.Run("ReadAll", func(b *testing.B) { benchReadAll(b, s) })
			b.Run("RawInsert1x32", func(b *testing.B) { benchRawInsert(b, be, db, 1) })
			b.Run("RawInsert100x32", func(b *testing.B) { benchRawInsert(b, be, db, 100) })
			b.Run("ProjectionLag1x32", func(b *testing.B) { benchProjectionLag(b, be, db, 0) })
			b.Run("ProjectionLag1x32At1000", func(b *testing.B) { benchProjectionLag(b, be, db, 1000) })
			b.Run("Load10000", func(b *testing.B) { benchLoad(b, s, 10000, false) })
			b.Run("Load10000Snapshots", func(b *testing.B) { benchLoad(b, s, 10000, true) })
			b.Run("Load1000Snapshots", func(b *testing.B) { benchLoad(b, s, 1000, true) })
		})
	}
}

// warmUp opens the connections the writers will use, so that no
// benchmark counts the time to open them.
func warmUp(b *testing.B, be backend, db *sql.DB) {
	sleep := "SELECT pg_sleep(0.05)"
	if be.dialect == sqlstore.MySQL {
		sleep = "SELECT SLEEP(0.05)"
	}
	var wg sync.WaitGroup
	for range benchWriters + 2 {
		wg.Go(func() {
			if _, err := db.ExecContext(context.Background(), sleep); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
}

var benchRun atomic.Int64

// benchEvents returns n events as a command handler appends them: a JSON
// payload of about 100 bytes and the envelope.
func benchEvents(n int) []eventstore.Event {
	es := make([]eventstore.Event, n)
	for i := range es {
		es[i] = eventstore.Event{
			Type:        "OrderLinePriced.v1",
			ContentType: "application/json",
			Payload:     []byte(`{"order_id":"o-123456","line":` + strconv.Itoa(i) + `,"sku":"SKU-0042","quantity":3,"price_cents":1999}`),
			Metadata: map[string]string{
				millrace.MetadataCorrelationID: "0b8f4c5e-2a7d-4c1b-9e3f-6d5a4b3c2d1e",
				millrace.MetadataCausationID:   "7e6d5c4b-3a2f-4e1d-8c9b-0a1b2c3d4e5f",
				millrace.MetadataPublishedBy:   "orders",
			},
		}
	}
	return es
}

// parallel runs ops operations, split over benchWriters goroutines, each
// calling op with its index and its count of operations so far.
func parallel(b *testing.B, ops int, op func(w, i int) error) {
	b.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, benchWriters)
	start := time.Now()
	for w := range benchWriters {
		n := ops / benchWriters
		if w < ops%benchWriters {
			n++
		}
		wg.Go(func() {
			for i := range n {
				if err := op(w, i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}

func benchAppend(b *testing.B, s *sqlstore.Store, size int) {
	run := benchRun.Add(1)
	ctx := context.Background()
	ops := (b.N + size - 1) / size
	batches := make([][]eventstore.Event, benchWriters)
	for w := range batches {
		batches[w] = benchEvents(size)
	}
	b.ResetTimer()
	parallel(b, ops, func(w, i int) error {
		stream := fmt.Sprintf("bench-%d-%d", run, w)
		_, err := s.Append(ctx, stream, int64(i*size), batches[w])
		return err
	})
}

func benchReadAll(b *testing.B, s *sqlstore.Store) {
	ctx := context.Background()
	const page = 1000
	after := eventstore.Start
	b.ResetTimer()
	start := time.Now()
	for read := 0; read < b.N; {
		events, err := s.ReadAll(ctx, after, min(page, b.N-read))
		if err != nil {
			b.Fatal(err)
		}
		if len(events) == 0 {
			// The appends above left enough for most runs; for the rest,
			// read the store again from the start.
			if after == eventstore.Start {
				b.Fatal("nothing to read")
			}
			after = eventstore.Start
			continue
		}
		read += len(events)
		after = events[len(events)-1].Position
	}
	elapsed := time.Since(start)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}

// benchRawInsert inserts b.N rows into a fresh table, rows rows per
// autocommitted INSERT, from benchWriters goroutines: what the database
// does without an event store's work.
func benchRawInsert(b *testing.B, be backend, db *sql.DB, rows int) {
	ctx := context.Background()
	table := be.quote("es_bench_raw_" + randomHex(b))
	create := "CREATE TABLE " + table + " (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, payload BYTEA NOT NULL)"
	row, placeholder := "($%d)", func(i int) string { return "$" + strconv.Itoa(i+1) }
	if be.dialect == sqlstore.MySQL {
		create = "CREATE TABLE " + table + " (id BIGINT AUTO_INCREMENT PRIMARY KEY, payload LONGBLOB NOT NULL) ENGINE=InnoDB"
		placeholder = func(int) string { return "?" }
	}
	_ = row
	if _, err := db.ExecContext(ctx, create); err != nil {
		b.Fatal(err)
	}
	defer func() { _, _ = db.ExecContext(ctx, "DROP TABLE "+table) }()
	var q strings.Builder
	q.WriteString("INSERT INTO " + table + " (payload) VALUES ")
	args := make([]any, rows)
	payload := benchEvents(1)[0].Payload
	for i := range rows {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString("(" + placeholder(i) + ")")
		args[i] = payload
	}
	insert := q.String()
	ops := (b.N + rows - 1) / rows
	b.ResetTimer()
	parallel(b, ops, func(int, int) error {
		_, err := db.ExecContext(ctx, insert, args...)
		return err
	})
}
