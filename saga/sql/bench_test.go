package sql_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/millrace/millrace/cqrs"
	"github.com/millrace/millrace/cqrs/outbox"
	"github.com/millrace/millrace/framework"
	"github.com/millrace/millrace/saga"
	"github.com/millrace/millrace/saga/sagatest"
	sagasql "github.com/millrace/millrace/saga/sql"
)

// BenchmarkSaga runs b.N order sagas (4 steps, charge and reserve in
// parallel) to completion in one service with its participants, and
// reports sagas/s and steps/s: memory and PostgreSQL state, over the
// in-memory transport and over RabbitMQ.
func BenchmarkSaga(b *testing.B) {
	for _, tr := range []struct{ name, kind string }{{"memory", "memory"}, {"rabbitmq", "amqp"}} {
		for _, state := range []string{"memory", "postgres"} {
			b.Run(fmt.Sprintf("transport=%s/state=%s", tr.name, state), func(b *testing.B) {
				benchSagas(b, tr.kind, state)
			})
		}
	}
}

func benchSagas(b *testing.B, kind, state string) {
	ctx := context.Background()
	p := prefix()
	reg, err := framework.Transports()
	if err != nil {
		b.Fatal(err)
	}
	env := []string{
		"MILLRACE_TRANSPORT_KIND=" + kind,
		"MILLRACE_TRANSPORT_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/",
		"MILLRACE_SERVICE_NAME=" + p + "bench",
		"MILLRACE_LOG_LEVEL=error",
		"MILLRACE_HANDLERS_CONCURRENCY=16",
	}
	cfg, err := framework.Parse(nil, env, reg)
	if err != nil {
		b.Fatal(err)
	}
	logger := framework.NewLogger(cfg, io.Discard)
	tr, closeTr, err := framework.OpenTransport(ctx, cfg, reg, logger)
	if err != nil {
		b.Fatal(err)
	}
	defer closeTr()
	app, err := framework.New(cfg, logger, tr)
	if err != nil {
		b.Fatal(err)
	}
	w := sagatest.NewWorld(p)
	w.SetTimeout(5 * time.Minute)
	bus := cqrs.New(app, w.BusOptions()...)
	w.Register(bus)
	var store saga.Store = saga.NewMemoryStore()
	if state == "postgres" {
		db, err := sql.Open("pgx", killDSN)
		if err != nil {
			b.Fatal(err)
		}
		db.SetMaxOpenConns(32)
		db.SetMaxIdleConns(32)
		defer func() {
			for _, tbl := range []string{p + "saga", p + "outbox", p + "outbox_relay"} {
				_, _ = db.Exec("DROP TABLE IF EXISTS " + tbl)
			}
			_ = db.Close()
		}()
		ocfg := outbox.DefaultConfig(outbox.Postgres)
		ocfg.TablePrefix = p
		ob, err := outbox.New(ctx, bus, db, ocfg)
		if err != nil {
			b.Fatal(err)
		}
		scfg := sagasql.DefaultConfig(outbox.Postgres)
		scfg.TablePrefix = p
		if store, err = sagasql.New(ctx, db, scfg, ob); err != nil {
			b.Fatal(err)
		}
	}
	var mu sync.Mutex
	done := 0
	allDone := make(chan struct{})
	cqrs.HandleEvent(bus, "bench.ended", func(_ context.Context, e saga.Ended) error {
		mu.Lock()
		defer mu.Unlock()
		done++
		if done == b.N {
			close(allDone)
		}
		return nil
	})
	ts := &timedStore{Store: store}
	store = ts
	m, err := saga.Register(bus, w.Definition(), store, w.Options()...)
	if err != nil {
		b.Fatal(err)
	}
	if err := app.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = app.Stop(context.Background()) }()
	b.ResetTimer()
	began := time.Now()
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := g; i < b.N; i += 16 {
				id := fmt.Sprintf("b-%d", i)
				if err := m.Start(ctx, id, sagatest.Order{ID: id, Amount: 1, Items: 1}); err != nil && !errors.Is(err, saga.ErrExists) {
					b.Error(err)
				}
			}
		})
	}
	wg.Wait()
	select {
	case <-allDone:
	case <-time.After(5 * time.Minute):
		b.Fatalf("%d of %d sagas ended", done, b.N)
	}
	elapsed := time.Since(began)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "sagas/s")
	b.ReportMetric(float64(4*b.N)/elapsed.Seconds(), "steps/s")
	b.ReportMetric(0, "ns/op")
	if ts.saves.Load() > 0 {
		b.Logf("save %s avg over %d, load %s avg", time.Duration(ts.saveNs.Load()/ts.saves.Load()), ts.saves.Load(), time.Duration(ts.loadNs.Load()/max(1, ts.loads.Load())))
	}
	st := m.Stats()
	b.Logf("%d sagas in %s; %d transitions, %d conflicts retried", b.N, elapsed.Round(time.Millisecond), st.Transitions, st.Conflicts)
}
