package projection_test

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/millrace/millrace/cqrs/eventstore"
	sqlstore "github.com/millrace/millrace/cqrs/eventstore/sql"
	"github.com/millrace/millrace/cqrs/internal/sqltest"
	"github.com/millrace/millrace/cqrs/projection"
)

// The events of the tests: money moved in and out of accounts, one
// account per stream.

type Deposited struct {
	Amount int `json:"amount"`
}

type Withdrawn struct {
	Amount int `json:"amount"`
}

// balances is the projection of the tests: a balance and a count of moves
// per account, and a ledger row per event. Its writes are not idempotent,
// and the ledger's key is the event id: an event applied twice shows in
// the balances, or fails the batch.
func balances(dialect sqlstore.Dialect, name string) projection.Definition {
	upsert := func(g projection.Generation) string {
		t := g.Table(name + "_balances")
		if dialect == sqlstore.MySQL {
			return "INSERT INTO " + t + " (account, balance, moves) VALUES (?, ?, 1) ON DUPLICATE KEY UPDATE balance = balance + VALUES(balance), moves = moves + 1"
		}
		return "INSERT INTO " + t + " AS b (account, balance, moves) VALUES ($1, $2, 1) ON CONFLICT (account) DO UPDATE SET balance = b.balance + excluded.balance, moves = b.moves + 1"
	}
	ledger := func(g projection.Generation) string {
		q := "INSERT INTO " + g.Table(name+"_ledger") + " (event_id, account, amount) VALUES (?, ?, ?)"
		if dialect == sqlstore.Postgres {
			q = "INSERT INTO " + g.Table(name+"_ledger") + " (event_id, account, amount) VALUES ($1, $2, $3)"
		}
		return q
	}
	move := func(ctx context.Context, tx *sql.Tx, g projection.Generation, amount int, e eventstore.Event) error {
		if _, err := tx.ExecContext(ctx, upsert(g), e.StreamID, amount); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, ledger(g), e.ID, e.StreamID, amount)
		return err
	}
	return projection.Definition{
		Name:   name,
		Tables: []string{name + "_balances", name + "_ledger"},
		Schema: func(g projection.Generation) []string {
			return []string{
				"CREATE TABLE " + g.Table(name+"_balances") + " (account VARCHAR(100) NOT NULL PRIMARY KEY, balance BIGINT NOT NULL, moves BIGINT NOT NULL)",
				"CREATE TABLE " + g.Table(name+"_ledger") + " (event_id VARCHAR(64) NOT NULL PRIMARY KEY, account VARCHAR(100) NOT NULL, amount BIGINT NOT NULL)",
			}
		},
		Handlers: []projection.Handler{
			projection.On(func(ctx context.Context, tx *sql.Tx, g projection.Generation, d Deposited, e eventstore.Event) error {
				return move(ctx, tx, g, d.Amount, e)
			}),
			projection.On(func(ctx context.Context, tx *sql.Tx, g projection.Generation, w Withdrawn, e eventstore.Event) error {
				return move(ctx, tx, g, -w.Amount, e)
			}),
		},
	}
}

// readModel is what a test reads of the balances: "account=balance/moves"
// per account, in order, and the ledger's size.
type readModel struct {
	Balances []string
	Ledger   int
}

func (r readModel) String() string {
	return fmt.Sprintf("%d accounts, %d ledger rows: %s", len(r.Balances), r.Ledger, strings.Join(r.Balances, " "))
}

// read reads the read model from table names (views or a generation's
// tables) balancesTable and ledgerTable.
func read(t testing.TB, db *sql.DB, balancesTable, ledgerTable string) readModel {
	t.Helper()
	ctx := context.Background()
	rows, err := db.QueryContext(ctx, "SELECT account, balance, moves FROM "+balancesTable+" ORDER BY account")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rows.Close() }()
	var m readModel
	for rows.Next() {
		var a string
		var b, n int64
		if err := rows.Scan(&a, &b, &n); err != nil {
			t.Fatal(err)
		}
		m.Balances = append(m.Balances, fmt.Sprintf("%s=%d/%d", a, b, n))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+ledgerTable).Scan(&m.Ledger); err != nil {
		t.Fatal(err)
	}
	return m
}

// expected is the read model the events appended so far make.
type expected struct {
	mu       sync.Mutex
	balances map[string][2]int64
	events   int
}

func (x *expected) add(stream string, amount int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.balances == nil {
		x.balances = map[string][2]int64{}
	}
	b := x.balances[stream]
	x.balances[stream] = [2]int64{b[0] + int64(amount), b[1] + 1}
	x.events++
}

func (x *expected) model() readModel {
	x.mu.Lock()
	defer x.mu.Unlock()
	m := readModel{Ledger: x.events}
	for _, a := range slices.Sorted(maps.Keys(x.balances)) {
		b := x.balances[a]
		m.Balances = append(m.Balances, fmt.Sprintf("%s=%d/%d", a, b[0], b[1]))
	}
	return m
}

// appendMoves appends n random deposits and withdrawals over accounts
// streams, in batches of one to three events, from writers goroutines,
// and adds them to x. Other event types come in between, which the
// projection skips.
func appendMoves(t testing.TB, s eventstore.Store, x *expected, prefix string, accounts, writers, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for done := 0; done < n/writers; {
				stream := fmt.Sprintf("%sacc-%02d", prefix, rng.IntN(accounts))
				var batch []eventstore.Event
				var amounts []int
				for range min(1+rng.IntN(3), n/writers-done) {
					amount := 1 + rng.IntN(100)
					typ := "Deposited"
					if rng.IntN(3) == 0 {
						typ = "Withdrawn"
						amounts = append(amounts, -amount)
					} else {
						amounts = append(amounts, amount)
					}
					batch = append(batch, eventstore.Event{Type: typ, ContentType: "application/json", Payload: fmt.Appendf(nil, `{"amount":%d}`, amount)})
				}
				batch = append(batch, eventstore.Event{Type: "Noted", Payload: []byte(`{}`)})
				if _, err := s.Append(context.Background(), stream, eventstore.Any, batch); err != nil {
					errs <- err
					return
				}
				for _, a := range amounts {
					x.add(stream, a)
				}
				done += len(amounts)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// waitFor polls cond every 10ms for up to a minute (a loaded machine, a
// shared server), failing the test with what if it never holds.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited a minute for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// env is one test's databases: the read model's (b, db) and the event
// store, in the same database or in memory.
type env struct {
	b      sqltest.Backend
	db     *sql.DB
	store  eventstore.Store
	prefix string // of the checkpoint tables and the projection's name
}

// forEachEnv runs f per backend, with the event store in that database
// and, as the subtest "MemoryStore", in memory.
func forEachEnv(t *testing.T, f func(t *testing.T, e env)) {
	sqltest.ForEach(t, func(t *testing.T, b sqltest.Backend) {
		db := b.Open(t)
		t.Run("SQLStore", func(t *testing.T) { f(t, newEnv(t, b, db, nil)) })
		t.Run("MemoryStore", func(t *testing.T) { f(t, newEnv(t, b, db, eventstore.NewMemory())) })
	})
}

func newEnv(t *testing.T, b sqltest.Backend, db *sql.DB, store eventstore.Store, opts ...sqlstore.Option) env {
	prefix := sqltest.Prefix(t)
	if store == nil {
		store = b.StoreAt(t, db, prefix, true, opts...)
	}
	e := env{b: b, db: db, store: store, prefix: prefix}
	t.Cleanup(func() {
		ctx := context.Background()
		for _, view := range []string{prefix + "p_balances", prefix + "p_ledger"} {
			_, _ = db.ExecContext(ctx, "DROP VIEW IF EXISTS "+b.Quote(view))
		}
		for g := 1; g <= 5; g++ {
			b.DropTables(t, db, prefix, fmt.Sprintf("p_balances_g%d", g), fmt.Sprintf("p_ledger_g%d", g))
		}
		b.DropTables(t, db, prefix, "projections", "projection_heads")
	})
	return e
}

// def is the env's balances projection, named "<prefix>p".
func (e env) def() projection.Definition { return balances(e.b.Dialect, e.prefix+"p") }

func (e env) config() projection.Config {
	c := projection.DefaultConfig(e.b.Dialect)
	c.TablePrefix = e.prefix
	return c
}

func (e env) projector(t testing.TB, cfg projection.Config) *projection.Projector {
	t.Helper()
	p, err := projection.New(context.Background(), e.db, e.store, e.def(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// view reads the read model through its views, as readers do.
func (e env) view(t testing.TB) readModel {
	t.Helper()
	return read(t, e.db, e.b.Quote(e.prefix+"p_balances"), e.b.Quote(e.prefix+"p_ledger"))
}

// run runs p in the background until the test ends.
func run(t testing.TB, p *projection.Projector) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
}
