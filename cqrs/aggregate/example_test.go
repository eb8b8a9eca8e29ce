package aggregate_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/millrace/millrace/cqrs/aggregate"
	"github.com/millrace/millrace/cqrs/eventstore"
)

func ExampleRepository_Handle() {
	ctx := context.Background()
	store := eventstore.NewMemory()
	accounts, err := aggregate.NewRepository(store, aggregate.Definition[*Account]{
		Type:   "account",
		New:    func() *Account { return &Account{} },
		Events: []aggregate.EventType{aggregate.Event[Opened](), aggregate.Event[Deposited](), aggregate.Event[Withdrawn]()},
	}, aggregate.Snapshots(store, eventstore.SnapshotPolicy{Every: 100}))
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = accounts.Handle(ctx, "acc-1", func(_ context.Context, a *Account) error {
		if err := a.Open("ann"); err != nil {
			return err
		}
		return a.Deposit(50)
	})
	fmt.Println("open and deposit:", err)
	_, err = accounts.Handle(ctx, "acc-1", func(_ context.Context, a *Account) error { return a.Withdraw(80) })
	fmt.Println("withdraw 80:", errors.Is(err, errInsufficient))
	a, err := accounts.Handle(ctx, "acc-1", func(_ context.Context, a *Account) error { return a.Withdraw(30) })
	fmt.Println("withdraw 30:", err, "balance", a.Balance, "version", a.Version())
	then, _ := accounts.LoadVersion(ctx, "acc-1", 2)
	fmt.Println("balance at version 2:", then.Balance)
	// Output:
	// open and deposit: <nil>
	// withdraw 80: true
	// withdraw 30: <nil> balance 20 version 3
	// balance at version 2: 50
}

func ExampleRecord() {
	a := &Account{Owner: "ann"}
	aggregate.Record(a, Deposited{Amount: 5})
	fmt.Println(a.Balance, len(a.Uncommitted()), a.Version())
	// Output: 5 1 0
}
