package projection_test

import (
	"testing"

	"github.com/millrace/millrace/cqrs/eventstore"
	"github.com/millrace/millrace/cqrs/internal/sqltest"
	"github.com/millrace/millrace/framework/frameworktest"
)

// TestRunIn_FollowsWhileTheAppRuns: the projector runs in the App from
// Start until shutdown, and its metrics go to the App's registry.
func TestRunIn_FollowsWhileTheAppRuns(t *testing.T) {
	b := sqltest.Backends[0]
	e := newEnv(t, b, b.Open(t), eventstore.NewMemory())
	h := frameworktest.New(t, frameworktest.WithConfig("observability: {metrics: true}"))
	p := e.projector(t, e.config())
	if err := p.RunIn(h.App); err != nil {
		t.Fatal(err)
	}
	if err := p.RunIn(h.App); err == nil {
		t.Error("a second RunIn registered the same metrics again without an error")
	}
	h.Start()
	var x expected
	appendMoves(t, e.store, &x, "", 3, 2, 40)
	want := x.model()
	waitFor(t, "every move applied", func() bool { return e.view(t).Ledger == want.Ledger })
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
}
