package projection_test

import (
	"context"
	"testing"
	"time"
)

func TestProjector_RebuildEqualsLive(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e env) {
		ctx := context.Background()
		var x expected
		appendMoves(t, e.store, &x, "", 10, 4, 300)
		cfg := e.config()
		cfg.BatchSize = 50
		p := e.projector(t, cfg)
		if err := p.CatchUp(ctx); err != nil {
			t.Fatal(err)
		}
		live := e.view(t)
		if want := x.model(); live.String() != want.String() {
			t.Fatalf("live\n got %s\nwant %s", live, want)
		}
		// Rebuild while the live generation serves and follows, and events
		// keep coming.
		run(t, p)
		writing := make(chan struct{})
		go func() {
			defer close(writing)
			appendMoves(t, e.store, &x, "", 10, 2, 200)
		}()
		during := 0
		rebuilt := make(chan error, 1)
		go func() { rebuilt <- p.Rebuild(ctx) }()
		for done := false; !done; {
			select {
			case err := <-rebuilt:
				if err != nil {
					t.Fatal(err)
				}
				done = true
			default:
				// Readers are served all along, from one generation or
				// the other, never from a half-built one.
				if m := e.view(t); m.Ledger < live.Ledger {
					t.Fatalf("readers saw %d ledger rows during the rebuild, fewer than the %d live before it", m.Ledger, live.Ledger)
				}
				during++
				time.Sleep(5 * time.Millisecond)
			}
		}
		<-writing
		want := x.model()
		waitFor(t, "every move applied", func() bool { return e.view(t).Ledger == want.Ledger })
		if got := e.view(t); got.String() != want.String() {
			t.Errorf("after the rebuild\n got %s\nwant %s", got, want)
		}
		g, err := p.Live(ctx)
		if err != nil || g.Number() != 2 {
			t.Errorf("live generation %v, %v; want 2", g, err)
		}
		gens, err := p.Generations(ctx)
		if err != nil || len(gens) != 1 {
			t.Errorf("generations %+v, %v; want the live one alone (the old one dropped)", gens, err)
		}
		var n int
		if err := e.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+e.b.Quote(e.prefix+"p_balances_g1")).Scan(&n); err == nil {
			t.Errorf("generation 1's table still there (%d rows)", n)
		}
		// And once more, quietly: rebuild output equals live output.
		before := e.view(t)
		if err := p.Rebuild(ctx); err != nil {
			t.Fatal(err)
		}
		if after := e.view(t); after.String() != before.String() {
			t.Errorf("second rebuild\n got %s\nwant %s", after, before)
		}
		t.Logf("%d reads during the rebuild", during)
	})
}
