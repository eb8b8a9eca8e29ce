package conformance

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/millrace/millrace/cqrs"
	"github.com/millrace/millrace/cqrs/outbox"
	"github.com/millrace/millrace/saga"
	"github.com/millrace/millrace/saga/sagatest"
	sagasql "github.com/millrace/millrace/saga/sql"
)

// The saga scenario: the order saga (package saga/sagatest) in one
// service, its participants in another, its state in PostgreSQL and in
// MySQL, its commands and state committed together through the outbox.
// Sagas that complete, one whose parallel branch fails and compensates,
// one whose last step times out (its timeout scheduled through the
// transport's delayed delivery).

// sagaDB is a database the saga's state is kept in.
type sagaDB struct {
	name    string
	dialect outbox.Dialect
	driver  string
	dsn     string
}

var sagaDBs = []sagaDB{
	{"PostgresState", outbox.Postgres, "pgx", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"},
	{"MySQLState", outbox.MySQL, "mysql", "root@tcp(127.0.0.1:3306)/test?parseTime=true&interpolateParams=true"},
}

func (s *suite) sagas(t *testing.T) {
	for _, db := range sagaDBs {
		t.Run(db.name, func(t *testing.T) { s.sagaOn(t, db) })
	}
}

func (s *suite) sagaOn(t *testing.T, db sagaDB) {
	ctx := context.Background()
	w := sagatest.NewWorld(fresh("saga") + ".")
	w.SetTimeout(8 * time.Second)
	w.Behave("reserve", sagatest.Decline, "declined")
	w.Behave("ship", sagatest.Silent, "late")

	parties := s.newService(t, fresh("parties"))
	w.Register(cqrs.New(parties.App, w.BusOptions()...))
	parties.Start()

	conn, err := sql.Open(db.driver, db.dsn)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetMaxIdleConns(8)
	prefix := strings.ReplaceAll(fresh("cs"), "-", "_") + "_"
	t.Cleanup(func() {
		for _, tbl := range []string{prefix + "saga", prefix + "outbox", prefix + "outbox_relay"} {
			_, _ = conn.Exec("DROP TABLE IF EXISTS " + tbl)
		}
		_ = conn.Close()
	})
	shop := s.newService(t, fresh("shop"))
	bus := cqrs.New(shop.App, w.BusOptions()...)
	ocfg := outbox.DefaultConfig(db.dialect)
	ocfg.TablePrefix = prefix
	ob, err := outbox.New(ctx, bus, conn, ocfg)
	if err != nil {
		t.Fatal(err)
	}
	scfg := sagasql.DefaultConfig(db.dialect)
	scfg.TablePrefix = prefix
	store, err := sagasql.New(ctx, conn, scfg, ob)
	if err != nil {
		t.Fatal(err)
	}
	m, err := saga.Register(bus, w.Definition(), store, w.Options()...)
	if err != nil {
		t.Fatal(err)
	}
	shop.Start()

	want := map[string]saga.Status{"ok-1": saga.Completed, "ok-2": saga.Completed, "ok-3": saga.Completed, "declined": saga.Compensated, "late": saga.Compensated}
	for id := range want {
		if err := m.Start(ctx, id, sagatest.Order{ID: id, Amount: 5, Items: 1}); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]*saga.Instance{}
	// Four hops per saga, each through the outbox and the broker, with a
	// timeout of 8s in the "late" one: on a loaded machine's MySQL
	// transport this takes more than one WaitTimeout.
	waitUntilFor(t, 3*WaitTimeout, "every saga to end", func() bool {
		for id := range want {
			_, in, err := m.Get(ctx, id)
			if err != nil && !errors.Is(err, saga.ErrNotFound) {
				t.Fatal(err)
			}
			if in == nil || !in.Status.Final() {
				return false
			}
			got[id] = in
		}
		return true
	})
	for id, status := range want {
		if got[id].Status != status {
			t.Errorf("saga %s ended %s (%s), want %s", id, got[id].Status, got[id].Reason, status)
		}
	}
	if u := w.Undone("declined"); !slices.Equal(u, []string{"charge", "create"}) {
		t.Errorf("declined: compensations %v, want charge, then create", u)
	}
	if r := got["late"].Step("ship"); r == nil || r.Status != saga.StepTimedOut {
		t.Errorf("late: ship is %v, want timed out", r)
	}
	if u := w.Undone("late"); len(u) != 3 || u[2] != "create" {
		t.Errorf("late: compensations %v, want charge and reserve, then create", u)
	}
	if tw := w.Twice(); len(tw) > 0 {
		t.Errorf("applied twice: %v", tw)
	}
	for _, in := range got {
		if in.Version < 4 || len(in.History) == 0 {
			t.Errorf("saga %s: version %d, %d history entries", in.ID, in.Version, len(in.History))
		}
	}
	list, err := m.List(ctx, saga.Completed, 0)
	if err != nil || len(list) != 3 {
		t.Errorf("List(completed) = %d instances, %v; want 3", len(list), err)
	}
}
