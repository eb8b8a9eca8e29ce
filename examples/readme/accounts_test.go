package readme_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"testing"
	"time"

	"github.com/millrace/millrace/cqrs/aggregate/aggregatetest"
	"github.com/millrace/millrace/cqrs/cqrstest"
	sqlstore "github.com/millrace/millrace/cqrs/eventstore/sql"
	"github.com/millrace/millrace/examples/readme"
	"github.com/millrace/millrace/framework/frameworktest"
)

func TestWithdraw_MoreThanTheBalanceIsRefused(t *testing.T) {
	aggregatetest.Given(t, readme.Accounts, readme.AccountOpened{Owner: "ann"}, readme.MoneyDeposited{Amount: 20}).
		When(func(ctx context.Context, a *readme.Account) error { return a.Withdraw(30) }).
		ThenError(readme.ErrInsufficientFunds)

	aggregatetest.Given(t, readme.Accounts, readme.AccountOpened{Owner: "ann"}, readme.MoneyDeposited{Amount: 20}).
		When(func(ctx context.Context, a *readme.Account) error { return a.Withdraw(15) }).
		Then(readme.MoneyWithdrawn{Amount: 15})
}

func TestREADME_AccountsProjectIntoBalances(t *testing.T) {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	suffix := hex.EncodeToString(b)
	db, err := sql.Open("pgx", postgres)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	prefix, table := "readme_es_"+suffix+"_", "readme_balances_"+suffix
	t.Cleanup(func() {
		_, _ = db.Exec(`DROP VIEW IF EXISTS ` + table)
		for _, t := range []string{table + "_g1", prefix + "events", prefix + "streams", prefix + "snapshots"} {
			_, _ = db.Exec(`DROP TABLE IF EXISTS ` + t)
		}
		_, _ = db.Exec(`DELETE FROM millrace_projections WHERE projection = $1`, table)
		_, _ = db.Exec(`DELETE FROM millrace_projection_heads WHERE projection = $1`, table)
		_ = db.Close()
	})
	store, err := sqlstore.New(db, sqlstore.Postgres, sqlstore.TablePrefix(prefix))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.CreateSchema(ctx); err != nil {
		t.Fatal(err)
	}
	h, bus := cqrstest.New(t, frameworktest.WithTimeout(time.Minute))
	if err := readme.RegisterAccounts(bus, store); err != nil {
		t.Fatal(err)
	}
	if _, err := readme.RunBalances(ctx, h.App, db, store, table); err != nil {
		t.Fatal(err)
	}
	h.Start()
	balance := func(want int) func() bool {
		return func() bool {
			var got int
			err := db.QueryRow(`SELECT balance FROM ` + table + ` WHERE account = 'acc-1'`).Scan(&got)
			return err == nil && got == want
		}
	}
	cqrstest.Send(h, bus, readme.OpenAccount{ID: "acc-1", Owner: "ann"})
	h.WaitUntil("the account opened", func() bool { return len(h.Outcomes("OpenAccount")) == 1 })
	cqrstest.Send(h, bus, readme.Deposit{ID: "acc-1", Amount: 50})
	poll(t, "the deposit projected", balance(50))
	cqrstest.Send(h, bus, readme.Withdraw{ID: "acc-1", Amount: 80}) // refused: poisoned, nothing saved
	h.WaitPoisoned("Withdraw", 1)
	cqrstest.Send(h, bus, readme.Withdraw{ID: "acc-1", Amount: 20})
	poll(t, "the withdrawal projected", balance(30))
}

// poll waits up to a minute for cond, which the harness cannot see change
// (a read model in the database).
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited a minute for %s", what)
		}
	}
}
