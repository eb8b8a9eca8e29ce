package sql_test

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/millrace/millrace/cqrs/aggregate"
	"github.com/millrace/millrace/cqrs/eventstore"
	sqlstore "github.com/millrace/millrace/cqrs/eventstore/sql"
	"github.com/millrace/millrace/cqrs/projection"
)

// benchProjectionLag appends b.N single events from 32 writers, as fast as
// they can (rate 0) or rate events/s in all, while a projection follows the
// store, counting events per stream in a table of its read model (a
// statement per event), and reports the lag of each event from its commit
// (its Append returned) to the commit of the projection batch that applied
// it.
func benchProjectionLag(b *testing.B, be backend, db *sql.DB, rate int) {
	ctx := context.Background()
	s := be.newStore(b, db) // of its own: the projection starts from its first event
	name := "bench_" + randomHex(b)
	upsert := "INSERT INTO %s AS c (stream_id, events) VALUES ($1, 1) ON CONFLICT (stream_id) DO UPDATE SET events = c.events + 1"
	if be.dialect == sqlstore.MySQL {
		upsert = "INSERT INTO %s (stream_id, events) VALUES (?, 1) ON DUPLICATE KEY UPDATE events = events + 1"
	}
	def := projection.Definition{
		Name:   name,
		Tables: []string{name + "_counts"},
		Schema: func(g projection.Generation) []string {
			return []string{"CREATE TABLE " + g.Table(name+"_counts") + " (stream_id VARCHAR(255) PRIMARY KEY, events BIGINT NOT NULL)"}
		},
		Handlers: []projection.Handler{projection.On(func(ctx context.Context, tx *sql.Tx, g projection.Generation, _ benchLine, e eventstore.Event) error {
			_, err := tx.ExecContext(ctx, fmt.Sprintf(upsert, g.Table(name+"_counts")), e.StreamID)
			return err
		})},
	}
	cfg := projection.DefaultConfig(be.dialect)
	cfg.TablePrefix = name + "_"
	p, err := projection.New(ctx, db, s, def, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		_, _ = db.ExecContext(ctx, "DROP VIEW IF EXISTS "+be.quote(name+"_counts"))
		for _, t := range []string{name + "_counts_g1", name + "_projections", name + "_projection_heads"} {
			_, _ = db.ExecContext(ctx, "DROP TABLE IF EXISTS "+be.quote(t))
		}
	}()
	// An event's commit is when its Append returned; it is applied when
	// the projection's batch that applied it committed. Either may be
	// noted first.
	var mu sync.Mutex
	committed := make(map[string]time.Time, b.N)
	applied := make(map[string]time.Time, b.N)
	p.OnApplied(func(_ projection.Generation, events []eventstore.Event) {
		now := time.Now()
		mu.Lock()
		for _, e := range events {
			applied[e.ID] = now
		}
		mu.Unlock()
	})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	run := benchRun.Add(1)
	template := benchEvents(1)[0]
	// With a rate, writer w appends its i-th event at start + (i*32+w)/rate.
	start := time.Now()
	b.ResetTimer()
	parallel(b, b.N, func(w, i int) error {
		if rate > 0 {
			time.Sleep(time.Until(start.Add(time.Duration(i*benchWriters+w) * time.Second / time.Duration(rate))))
		}
		e := template
		e.ID = fmt.Sprintf("lag-%d-%d-%d", run, w, i)
		_, err := s.Append(ctx, fmt.Sprintf("lag-%d-%d", run, w), int64(i), []eventstore.Event{e})
		now := time.Now()
		mu.Lock()
		committed[e.ID] = now
		mu.Unlock()
		return err
	})
	deadline := time.Now().Add(2 * time.Minute)
	for {
		mu.Lock()
		n := len(applied)
		mu.Unlock()
		if n >= b.N {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("the projection applied %d of %d events in 2 minutes", n, b.N)
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.StopTimer()
	stop()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	lags := make([]time.Duration, 0, b.N)
	for id, at := range committed {
		lags = append(lags, max(applied[id].Sub(at), 0))
	}
	slices.Sort(lags)
	b.ReportMetric(ms(lags[len(lags)/2]), "p50-ms")
	b.ReportMetric(ms(lags[len(lags)*99/100]), "p99-ms")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// benchLine is the Go type of benchEvents' events.
type benchLine struct {
	OrderID string `json:"order_id"`
	Line    int    `json:"line"`
}

func (benchLine) MessageType() string { return "OrderLinePriced" }
func (benchLine) MessageVersion() int { return 1 }

// benchOrder is an aggregate of order lines.
type benchOrder struct {
	aggregate.Root
	Lines int `json:"lines"`
	Last  int `json:"last"`
}

func (o *benchOrder) Apply(event any) {
	if l, ok := event.(benchLine); ok {
		o.Lines++
		o.Last = l.Line
	}
}

// benchLoad reports the time to load an aggregate of events events, from
// its events alone or from a snapshot taken every 100 events.
func benchLoad(b *testing.B, s *sqlstore.Store, events int, snapshots bool) {
	ctx := context.Background()
	def := aggregate.Definition[*benchOrder]{
		Type:   "order",
		New:    func() *benchOrder { return &benchOrder{} },
		Events: []aggregate.EventType{aggregate.Event[benchLine]()},
	}
	var opts []aggregate.Option
	if snapshots {
		opts = append(opts, aggregate.Snapshots(s, eventstore.SnapshotPolicy{Every: 100}))
	}
	r, err := aggregate.NewRepository(s, def, opts...)
	if err != nil {
		b.Fatal(err)
	}
	id := fmt.Sprintf("load-%d-%d", benchRun.Add(1), events)
	// Build the stream as commands do, 100 events per command, so that the
	// snapshots are taken as in production.
	for done := 0; done < events; done += 100 {
		if _, err := r.Handle(ctx, id, func(_ context.Context, o *benchOrder) error {
			for i := range 100 {
				aggregate.Record(o, benchLine{OrderID: id, Line: done + i})
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		o, err := r.Load(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		if o.Lines != events || o.Version() != int64(events) {
			b.Fatalf("loaded %d lines at version %d, want %d", o.Lines, o.Version(), events)
		}
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ms(time.Since(start))/float64(b.N), "ms/load")
}
