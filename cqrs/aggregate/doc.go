// Package aggregate is the write side of event sourcing: an aggregate keeps
// no state but its events. Its state changes only by applying events
// ([Aggregate.Apply]); a command method decides, from the state, which
// events happen and records them ([Record]); a [Repository] loads an
// aggregate by replaying its stream (from a snapshot when there is one) and
// saves the recorded events with the version it was loaded at, so that
// concurrent commands on one aggregate never both succeed.
//
//	type Account struct {
//		aggregate.Root
//		Balance int
//	}
//
//	func (a *Account) Apply(event any) {
//		switch e := event.(type) {
//		case Deposited:
//			a.Balance += e.Amount
//		case Withdrawn:
//			a.Balance -= e.Amount
//		}
//	}
//
//	func (a *Account) Withdraw(amount int) error {
//		if amount > a.Balance {
//			return ErrInsufficientFunds
//		}
//		aggregate.Record(a, Withdrawn{Amount: amount})
//		return nil
//	}
//
//	accounts, err := aggregate.NewRepository(store, aggregate.Definition[*Account]{
//		Type:   "account",
//		New:    func() *Account { return &Account{} },
//		Events: []aggregate.EventType{aggregate.Event[Deposited](), aggregate.Event[Withdrawn]()},
//	}, aggregate.Snapshots(store, eventstore.SnapshotPolicy{Every: 100}))
//
//	// load, decide, save; again from the load if another command got there first
//	_, err = accounts.Handle(ctx, "acc-1", func(ctx context.Context, a *Account) error {
//		return a.Withdraw(30)
//	})
//
// [HandleCommand] makes that a command handler of a cqrs.Bus. Package
// aggregatetest tests aggregates as given events, when a command, then
// events or an error.
//
// An aggregate's state as of a version or a time is [Repository.LoadVersion]
// and [Repository.LoadAsOf]. Snapshots ([Snapshots]) are the codec's
// encoding of the aggregate (its exported fields, with JSON), kept per
// [Definition.StateVersion].
package aggregate
