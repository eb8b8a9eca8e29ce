package readme

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/cqrs"
	"github.com/millrace/millrace/cqrs/aggregate"
	"github.com/millrace/millrace/cqrs/eventstore"
	sqlstore "github.com/millrace/millrace/cqrs/eventstore/sql"
	"github.com/millrace/millrace/cqrs/projection"
	"github.com/millrace/millrace/framework"
)

type AccountOpened struct {
	Owner string `json:"owner"`
}
type MoneyDeposited struct {
	Amount int `json:"amount"`
}
type MoneyWithdrawn struct {
	Amount int `json:"amount"`
}

var ErrInsufficientFunds = errors.New("insufficient funds")

// Account keeps no state but its events: Apply is the only place it
// changes, so replaying the events (or a snapshot and the events after it)
// rebuilds it.
type Account struct {
	aggregate.Root
	Owner   string `json:"owner"`
	Balance int    `json:"balance"`
}

func (a *Account) Apply(event any) {
	switch e := event.(type) {
	case AccountOpened:
		a.Owner = e.Owner
	case MoneyDeposited:
		a.Balance += e.Amount
	case MoneyWithdrawn:
		a.Balance -= e.Amount
	}
}

// Withdraw decides; Record applies and keeps the event for the save.
func (a *Account) Withdraw(amount int) error {
	if amount > a.Balance {
		return millrace.Permanent(ErrInsufficientFunds) // no retry can help
	}
	aggregate.Record(a, MoneyWithdrawn{Amount: amount})
	return nil
}

var Accounts = aggregate.Definition[*Account]{
	Type:   "account", // streams "account-<id>"
	New:    func() *Account { return &Account{} },
	Events: []aggregate.EventType{aggregate.Event[AccountOpened](), aggregate.Event[MoneyDeposited](), aggregate.Event[MoneyWithdrawn]()},
}

type OpenAccount struct {
	ID    string `json:"id"`
	Owner string `json:"owner"`
}
type Deposit struct {
	ID     string `json:"id"`
	Amount int    `json:"amount"`
}
type Withdraw struct {
	ID     string `json:"id"`
	Amount int    `json:"amount"`
}

// RegisterAccounts makes each command "load, decide, save" on one account:
// a concurrent command on the same account makes the save conflict, and the
// command runs again on the account as the other left it.
func RegisterAccounts(bus *cqrs.Bus, store *sqlstore.Store) error {
	accounts, err := aggregate.NewRepository(store, Accounts,
		aggregate.Snapshots(store, eventstore.SnapshotPolicy{Every: 200})) // loads read at most 200 events
	if err != nil {
		return err
	}
	aggregate.HandleCommand(bus, accounts, func(c OpenAccount) string { return c.ID },
		func(ctx context.Context, a *Account, c OpenAccount) error {
			if a.Version() > 0 {
				return nil // opened already: a redelivery
			}
			aggregate.Record(a, AccountOpened{Owner: c.Owner})
			return nil
		})
	aggregate.HandleCommand(bus, accounts, func(c Deposit) string { return c.ID },
		func(ctx context.Context, a *Account, c Deposit) error {
			aggregate.Record(a, MoneyDeposited{Amount: c.Amount})
			return nil
		})
	aggregate.HandleCommand(bus, accounts, func(c Withdraw) string { return c.ID },
		func(ctx context.Context, a *Account, c Withdraw) error { return a.Withdraw(c.Amount) })
	return nil
}

// Balances is the read model: a row per account. Its handlers write to the
// tables of a generation (g.Table(table), "<table>_g1"); readers query the
// view named table, which shows the live generation.
func Balances(table string) projection.Definition {
	move := func(ctx context.Context, tx *sql.Tx, g projection.Generation, stored eventstore.Event, amount int) error {
		_, err := tx.ExecContext(ctx, fmt.Sprintf(`INSERT INTO %s AS b (account, balance) VALUES ($1, $2)
			ON CONFLICT (account) DO UPDATE SET balance = b.balance + excluded.balance`, g.Table(table)),
			stored.Metadata[millrace.MetadataEntityID], amount)
		return err
	}
	return projection.Definition{
		Name:   table,
		Tables: []string{table},
		Schema: func(g projection.Generation) []string {
			return []string{"CREATE TABLE " + g.Table(table) + " (account TEXT PRIMARY KEY, balance BIGINT NOT NULL)"}
		},
		Handlers: []projection.Handler{
			projection.On(func(ctx context.Context, tx *sql.Tx, g projection.Generation, e MoneyDeposited, stored eventstore.Event) error {
				return move(ctx, tx, g, stored, e.Amount)
			}),
			projection.On(func(ctx context.Context, tx *sql.Tx, g projection.Generation, e MoneyWithdrawn, stored eventstore.Event) error {
				return move(ctx, tx, g, stored, -e.Amount)
			}),
		},
	}
}

// RunBalances follows the event store while the App runs: each batch of
// events and the projection's checkpoint commit in one transaction.
func RunBalances(ctx context.Context, app *framework.App, db *sql.DB, store *sqlstore.Store, table string) (*projection.Projector, error) {
	p, err := projection.New(ctx, db, store, Balances(table), projection.DefaultConfig(sqlstore.Postgres))
	if err != nil {
		return nil, err
	}
	return p, p.RunIn(app) // metrics: millrace_projection_lag_seconds{projection="<table>"}
}
