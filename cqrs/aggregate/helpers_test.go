package aggregate_test

import (
	"context"
	"errors"
	"testing"

	"go.uber.org/goleak"

	"github.com/millrace/millrace/cqrs"
	"github.com/millrace/millrace/cqrs/aggregate"
	"github.com/millrace/millrace/cqrs/eventstore"
	"github.com/millrace/millrace/cqrs/internal/sqltest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The account of the tests: opened, then money in and out.

type Opened struct {
	Owner string `json:"owner"`
}

type Deposited struct {
	Amount int `json:"amount"`
}

func (Deposited) MessageVersion() int { return 2 }

type Withdrawn struct {
	Amount int `json:"amount"`
}

var (
	errNotOpen        = errors.New("account not open")
	errAlreadyOpen    = errors.New("account already open")
	errInsufficient   = errors.New("insufficient funds")
	errNotPositiveSum = errors.New("amount must be positive")
)

type Account struct {
	aggregate.Root
	Owner   string `json:"owner"`
	Balance int    `json:"balance"`
	Moves   int    `json:"moves"`
}

func (a *Account) Apply(event any) {
	switch e := event.(type) {
	case Opened:
		a.Owner = e.Owner
	case Deposited:
		a.Balance += e.Amount
		a.Moves++
	case Withdrawn:
		a.Balance -= e.Amount
		a.Moves++
	}
}

func (a *Account) Open(owner string) error {
	if a.Owner != "" {
		return errAlreadyOpen
	}
	aggregate.Record(a, Opened{Owner: owner})
	return nil
}

func (a *Account) Deposit(amount int) error {
	switch {
	case a.Owner == "":
		return errNotOpen
	case amount <= 0:
		return errNotPositiveSum
	}
	aggregate.Record(a, Deposited{Amount: amount})
	return nil
}

func (a *Account) Withdraw(amount int) error {
	switch {
	case a.Owner == "":
		return errNotOpen
	case amount > a.Balance:
		return errInsufficient
	}
	aggregate.Record(a, Withdrawn{Amount: amount})
	return nil
}

func accounts() aggregate.Definition[*Account] {
	return aggregate.Definition[*Account]{
		Type:         "account",
		New:          func() *Account { return &Account{} },
		Events:       []aggregate.EventType{aggregate.Event[Opened](), aggregate.Event[Deposited](), aggregate.Event[Withdrawn]()},
		StateVersion: 1,
	}
}

// store is an event store of a test, with its snapshots.
type store interface {
	eventstore.Store
	eventstore.SnapshotStore
}

// forEachStore runs f on a fresh memory store and on fresh tables of
// PostgreSQL and MySQL.
func forEachStore(t *testing.T, f func(t *testing.T, s store)) {
	t.Run("Memory", func(t *testing.T) { f(t, eventstore.NewMemory()) })
	sqltest.ForEach(t, func(t *testing.T, b sqltest.Backend) {
		f(t, b.NewStore(t, b.Open(t)))
	})
}

// fataler is what newRepo needs of a *testing.T or *rapid.T.
type fataler interface {
	Helper()
	Fatal(args ...any)
}

func newRepo(t fataler, s eventstore.Store, opts ...aggregate.Option) *aggregate.Repository[*Account] {
	t.Helper()
	r, err := aggregate.NewRepository(s, accounts(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// reads counts the events a store's ReadStream returns.
type reads struct {
	store
	events int
}

func (r *reads) ReadStream(ctx context.Context, stream string, from int64, opts eventstore.ReadOptions) ([]eventstore.Event, error) {
	es, err := r.store.ReadStream(ctx, stream, from, opts)
	r.events += len(es)
	return es, err
}

func cqrsName[T any]() string { return cqrs.Name[T]() }
