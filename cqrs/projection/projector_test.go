package projection_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/millrace/millrace/cqrs/eventstore"
	sqlstore "github.com/millrace/millrace/cqrs/eventstore/sql"
	"github.com/millrace/millrace/cqrs/internal/sqltest"
	"github.com/millrace/millrace/cqrs/projection"
)

func TestMain(m *testing.M) {
	if isKillChild() {
		runKillChild()
		return
	}
	goleak.VerifyTestMain(m)
}

func TestProjector_FollowsTheStoreAndAppliesEveryEventOnce(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e env) {
		var x expected
		appendMoves(t, e.store, &x, "", 10, 4, 200)
		p := e.projector(t, e.config())
		run(t, p)
		appendMoves(t, e.store, &x, "", 10, 4, 200)
		want := x.model()
		waitFor(t, "every move applied", func() bool { return e.view(t).Ledger == want.Ledger })
		if got := e.view(t); got.String() != want.String() {
			t.Errorf("read model\n got %s\nwant %s", got, want)
		}
		if s := p.Stats(); s.Applied < int64(want.Ledger) || s.Failures != 0 {
			t.Errorf("stats %+v: want at least %d applied (skipped types count), no failures", s, want.Ledger)
		}
	})
}

func TestProjector_TwoInstancesApplyEachEventOnce(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e env) {
		cfg := e.config()
		cfg.BatchSize = 7
		run(t, e.projector(t, cfg))
		run(t, e.projector(t, cfg))
		var x expected
		appendMoves(t, e.store, &x, "", 5, 4, 300)
		want := x.model()
		waitFor(t, "every move applied", func() bool { return e.view(t).Ledger == want.Ledger })
		if got := e.view(t); got.String() != want.String() {
			t.Errorf("read model\n got %s\nwant %s", got, want)
		}
	})
}

// TestProjector_PostgresCommitWakesTheProjection: with a poll interval of
// an hour, only the store's notification can bring an event to the
// projection.
func TestProjector_PostgresCommitWakesTheProjection(t *testing.T) {
	b := sqltest.Backends[0]
	db := b.Open(t)
	e := newEnv(t, b, db, nil)
	cfg := e.config()
	cfg.PollInterval = time.Hour
	p := e.projector(t, cfg)
	run(t, p)
	var x expected
	for i := range 3 {
		appendMoves(t, e.store, &x, "", 1, 1, 1)
		waitFor(t, "the event applied", func() bool { return p.Stats().Applied >= int64(2*(i+1)) })
	}
}

func TestProjector_FailingHandlerStopsTheProjectionUntilItSucceeds(t *testing.T) {
	b := sqltest.Backends[0]
	e := newEnv(t, b, b.Open(t), eventstore.NewMemory())
	def := e.def()
	var failing atomic.Bool
	failing.Store(true)
	def.Handlers = append(def.Handlers, projection.On(func(context.Context, *sql.Tx, projection.Generation, Noted, eventstore.Event) error {
		if failing.Load() {
			return errors.New("read model down")
		}
		return nil
	}))
	p, err := projection.New(context.Background(), e.db, e.store, def, e.config())
	if err != nil {
		t.Fatal(err)
	}
	var x expected
	appendMoves(t, e.store, &x, "", 3, 1, 30)
	if err := p.CatchUp(context.Background()); err == nil || !strings.Contains(err.Error(), "read model down") || !strings.Contains(err.Error(), "Noted") {
		t.Fatalf("CatchUp = %v, want the handler's error naming the event", err)
	}
	if got := e.view(t); got.Ledger != 0 {
		t.Fatalf("a failed batch left %s", got)
	}
	run(t, p)
	waitFor(t, "failures", func() bool { return p.Stats().Failures > 0 })
	failing.Store(false)
	want := x.model()
	waitFor(t, "every move applied", func() bool { return e.view(t).Ledger == want.Ledger })
	if got := e.view(t); got.String() != want.String() {
		t.Errorf("read model\n got %s\nwant %s", got, want)
	}
}

type Noted struct{}

func TestProjector_LagMetric(t *testing.T) {
	b := sqltest.Backends[0]
	e := newEnv(t, b, b.Open(t), eventstore.NewMemory())
	p := e.projector(t, e.config())
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(p.Collector()); err != nil {
		t.Fatal(err)
	}
	var x expected
	appendMoves(t, e.store, &x, "", 3, 1, 20)
	if err := p.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			switch {
			case m.GetGauge() != nil:
				got[f.GetName()] = m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				got[f.GetName()] = m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				got[f.GetName()] = float64(m.GetHistogram().GetSampleCount())
			}
			if l := m.GetLabel(); len(l) != 1 || l[0].GetName() != "projection" || l[0].GetValue() != e.def().Name {
				t.Errorf("%s labels %v, want projection=%s", f.GetName(), l, e.def().Name)
			}
		}
	}
	if len(got) != 3 || got["millrace_projection_lag_seconds"] != 0 ||
		got["millrace_projection_applied_total"] < 20 || got["millrace_projection_apply_lag_seconds"] < 20 {
		t.Errorf("metrics %v; want lag 0 after catching up, at least 20 applied and observed", got)
	}
}

func TestNew_RejectsBadDefinitionsAndConfigNamingTheField(t *testing.T) {
	good := balances(sqlstore.Postgres, "p")
	tests := []struct {
		name string
		def  func(d *projection.Definition)
		cfg  func(c *projection.Config)
		want string
	}{
		{"bad name", func(d *projection.Definition) { d.Name = "p-1" }, nil, `Name "p-1"`},
		{"tables without schema", func(d *projection.Definition) { d.Schema = nil }, nil, "Schema is nil"},
		{"bad table", func(d *projection.Definition) { d.Tables = []string{"a;drop"} }, nil, `Tables[0] "a;drop"`},
		{"no handlers", func(d *projection.Definition) { d.Handlers = nil }, nil, "Handlers is empty"},
		{"a type twice", func(d *projection.Definition) { d.Handlers = append(d.Handlers, d.Handlers[0]) }, nil, "Deposited is handled twice"},
		{"zero handler", func(d *projection.Definition) { d.Handlers = append(d.Handlers, projection.Handler{}) }, nil, "Handlers[2] was not made by projection.On"},
		{"no dialect", nil, func(c *projection.Config) { c.Dialect = 0 }, "Dialect"},
		{"bad prefix", nil, func(c *projection.Config) { c.TablePrefix = "x y" }, `TablePrefix "x y"`},
		{"batch", nil, func(c *projection.Config) { c.BatchSize = 0 }, "BatchSize 0"},
		{"timeout", nil, func(c *projection.Config) { c.CallTimeout = 0 }, "CallTimeout 0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := good
			d.Handlers = append([]projection.Handler(nil), good.Handlers...)
			if tt.def != nil {
				tt.def(&d)
			}
			c := projection.DefaultConfig(sqlstore.Postgres)
			if tt.cfg != nil {
				tt.cfg(&c)
			}
			_, err := projection.New(context.Background(), &sql.DB{}, eventstore.NewMemory(), d, c)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
