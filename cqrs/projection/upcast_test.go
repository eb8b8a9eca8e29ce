package projection_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/cqrs"
	"github.com/millrace/millrace/cqrs/aggregate"
	"github.com/millrace/millrace/cqrs/eventstore"
	sqlstore "github.com/millrace/millrace/cqrs/eventstore/sql"
	"github.com/millrace/millrace/cqrs/internal/sqltest"
	"github.com/millrace/millrace/cqrs/outbox"
	"github.com/millrace/millrace/cqrs/projection"
	"github.com/millrace/millrace/framework"
	"github.com/millrace/millrace/framework/frameworktest"
)

// depositUpcasters upcast the deposits of two older releases:
// MoneyIn.v1 {"cents"} -> MoneyIn.v2 {"amount_cents","currency"} ->
// Deposited {"amount"} (whole units).
func depositUpcasters(t testing.TB) *eventstore.Upcasters {
	t.Helper()
	u := eventstore.NewUpcasters()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(u.Register("MoneyIn.v1", "MoneyIn.v2", func(e eventstore.Event) (eventstore.Event, error) {
		var v1 struct{ Cents int }
		if err := json.Unmarshal(e.Payload, &v1); err != nil {
			return e, err
		}
		e.Payload = fmt.Appendf(nil, `{"amount_cents":%d,"currency":"EUR"}`, v1.Cents)
		return e, nil
	}))
	must(u.Register("MoneyIn.v2", "Deposited", func(e eventstore.Event) (eventstore.Event, error) {
		var v2 struct {
			AmountCents int `json:"amount_cents"`
		}
		if err := json.Unmarshal(e.Payload, &v2); err != nil {
			return e, err
		}
		e.Payload = fmt.Appendf(nil, `{"amount":%d}`, v2.AmountCents/100)
		return e, nil
	}))
	return u
}

// oldDeposits are deposits as the older releases stored them.
var oldDeposits = []eventstore.Event{
	{Type: "MoneyIn.v1", ContentType: "application/json", Payload: []byte(`{"cents":1200}`)},
	{Type: "MoneyIn.v2", ContentType: "application/json", Payload: []byte(`{"amount_cents":500,"currency":"EUR"}`)},
	{Type: "Deposited", ContentType: "application/json", Payload: []byte(`{"amount":3}`)},
}

// wantUpcast is what every read path must see of oldDeposits.
var wantUpcast = []string{"Deposited{Amount:12}", "Deposited{Amount:5}", "Deposited{Amount:3}"}

func seen(typ string, d Deposited) string { return fmt.Sprintf("%s{Amount:%d}", typ, d.Amount) }

// wallet is an aggregate of deposits that remembers what it applied.
type wallet struct {
	aggregate.Root
	applied []string
}

func (w *wallet) Apply(event any) {
	if d, ok := event.(Deposited); ok {
		w.applied = append(w.applied, seen("Deposited", d))
	}
}

// TestUpcasting_SameOutputOnEveryReadPath: events stored by older releases
// come out as the current version on every path that reads them: the
// aggregate's load, ReadStream, ReadAll, a projection live and during a
// rebuild, and the outbox relay.
func TestUpcasting_SameOutputOnEveryReadPath(t *testing.T) {
	sqltest.ForEach(t, func(t *testing.T, b sqltest.Backend) {
		ctx := context.Background()
		u := depositUpcasters(t)
		db := b.Open(t)
		e := newEnv(t, b, db, nil, sqlstore.UpcastWith(u))
		if _, err := e.store.Append(ctx, "wallet-w-1", eventstore.NoStream, slices.Clone(oldDeposits)); err != nil {
			t.Fatal(err)
		}
		check := func(path string, got []string) {
			t.Helper()
			if !slices.Equal(got, wantUpcast) {
				t.Errorf("%s read %q, want %q", path, got, wantUpcast)
			}
		}

		// The aggregate.
		wallets, err := aggregate.NewRepository(e.store, aggregate.Definition[*wallet]{
			Type: "wallet", New: func() *wallet { return &wallet{} },
			Events: []aggregate.EventType{aggregate.Event[Deposited]()},
		})
		if err != nil {
			t.Fatal(err)
		}
		w, err := wallets.Load(ctx, "w-1")
		if err != nil {
			t.Fatal(err)
		}
		check("aggregate load", w.applied)

		// The stream and the global order.
		decodeAll := func(path string, events []eventstore.Event, err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			var got []string
			for _, ev := range events {
				var d Deposited
				if err := eventstore.Decode(framework.JSON{}, ev, &d); err != nil {
					t.Fatalf("%s: %v", path, err)
				}
				got = append(got, seen(ev.Type, d))
			}
			check(path, got)
		}
		events, err := e.store.ReadStream(ctx, "wallet-w-1", 1, eventstore.ReadOptions{})
		decodeAll("ReadStream", events, err)
		events, err = e.store.ReadAll(ctx, eventstore.Start, 100)
		decodeAll("ReadAll", events, err)

		// A projection, live, then rebuilding.
		var mu sync.Mutex
		byGeneration := map[int][]string{}
		def := e.def()
		def.Handlers = append(def.Handlers[1:], projection.On(func(ctx context.Context, tx *sql.Tx, g projection.Generation, d Deposited, ev eventstore.Event) error {
			mu.Lock()
			byGeneration[g.Number()] = append(byGeneration[g.Number()], seen(ev.Type, d))
			mu.Unlock()
			return nil
		}))
		p, err := projection.New(ctx, db, e.store, def, e.config())
		if err != nil {
			t.Fatal(err)
		}
		if err := p.CatchUp(ctx); err != nil {
			t.Fatal(err)
		}
		if err := p.Rebuild(ctx); err != nil {
			t.Fatal(err)
		}
		check("projection live", byGeneration[1])
		check("projection rebuild", byGeneration[2])

		// The outbox relay, publishing what older releases wrote to the
		// outbox.
		h := frameworktest.New(t)
		bus := cqrs.New(h.App)
		oc := outbox.DefaultConfig(outbox.Postgres)
		if b.Dialect == sqlstore.MySQL {
			oc = outbox.DefaultConfig(outbox.MySQL)
		}
		oc.TablePrefix, oc.PollInterval, oc.Upcasters = e.prefix, 20*time.Millisecond, u
		ob, err := outbox.New(ctx, bus, db, oc)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.DropTables(t, db, e.prefix, "outbox", "outbox_relay") })
		var relayed []string
		cqrs.HandleEvent(bus, "wallet-view", func(ctx context.Context, d Deposited) error {
			mu.Lock()
			relayed = append(relayed, seen(framework.Message(ctx).Metadata.Get(millrace.MetadataType), d))
			mu.Unlock()
			return nil
		})
		h.Start()
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, old := range oldDeposits {
			m := message.NewMessage(fmt.Sprint("old-", old.Type), old.Payload)
			m.Metadata.Set(millrace.MetadataType, old.Type)
			m.Metadata.Set(millrace.MetadataContentType, old.ContentType)
			if err := ob.PublishMessage(ctx, tx, cqrs.Topic[Deposited](bus), m); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		h.WaitUntil("the relayed deposits handled", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(relayed) >= len(oldDeposits)
		})
		mu.Lock()
		check("outbox relay", relayed)
		mu.Unlock()
	})
}
