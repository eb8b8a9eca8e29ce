package projection_test

import (
	"context"
	"testing"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/cqrs"
	sqlstore "github.com/millrace/millrace/cqrs/eventstore/sql"
	"github.com/millrace/millrace/cqrs/internal/sqltest"
	"github.com/millrace/millrace/cqrs/outbox"
	"github.com/millrace/millrace/cqrs/projection"
	"github.com/millrace/millrace/framework"
	"github.com/millrace/millrace/framework/frameworktest"
)

// TestConsume_AppliesTransportEventsOnceEach: events consumed from the
// transport are applied to the live generation, and a redelivered one
// (same message id) is applied once, its handled mark committed with the
// writes.
func TestConsume_AppliesTransportEventsOnceEach(t *testing.T) {
	sqltest.ForEach(t, func(t *testing.T, b sqltest.Backend) {
		db := b.Open(t)
		e := newEnv(t, b, db, nil)
		store := "postgres"
		if b.Dialect == sqlstore.MySQL {
			store = "mysql"
		}
		h := frameworktest.New(t, frameworktest.WithConfig(`
middleware:
  retry: {max_attempts: 3, initial_interval: 5ms}
  delayed_retry: {enabled: false}
  dedup:
    store: `+store+`
    dsn: '`+b.DataSource()+`'
    table: `+e.prefix+`dedup
`))
		t.Cleanup(func() { b.DropTables(t, db, e.prefix, "dedup") })
		bus := cqrs.New(h.App)
		oc := outbox.DefaultConfig(outbox.Postgres)
		if store == "mysql" {
			oc = outbox.DefaultConfig(outbox.MySQL)
		}
		oc.TablePrefix, oc.Relay = e.prefix, false
		ob, err := outbox.New(context.Background(), bus, db, oc)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.DropTables(t, db, e.prefix, "outbox", "outbox_relay") })
		p, err := projection.New(context.Background(), db, nil, e.def(), e.config())
		if err != nil {
			t.Fatal(err)
		}
		const topic = "accounts"
		p.Consume(h.App, ob, topic)
		h.Start()
		var x expected
		for i, amount := range []int{5, 7, 11} {
			id := "move-" + string(rune('a'+i))
			for range 2 { // each delivered twice
				h.Publish(topic, Deposited{Amount: amount}, framework.WithID(id), framework.WithMetadata(millrace.MetadataEntityID, "acc-1"))
			}
			x.add("acc-1", amount)
		}
		want := x.model()
		h.WaitUntil("three deposits handled twice each", func() bool { return len(h.Outcomes(e.def().Name)) >= 6 })
		waitFor(t, "the deposits applied", func() bool { return e.view(t).Ledger >= want.Ledger })
		if got := e.view(t); got.String() != want.String() {
			t.Errorf("read model\n got %s\nwant %s", got, want)
		}
		if f := h.Failures(e.def().Name); len(f) != 0 {
			t.Errorf("failures %v", f)
		}
		if err := p.CatchUp(context.Background()); err == nil {
			t.Error("CatchUp without a store: want an error")
		}
	})
}
