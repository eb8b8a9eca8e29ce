package aggregatetest_test

import (
	"context"
	"testing"

	"github.com/millrace/millrace/cqrs/aggregate/aggregatetest"
)

func ExampleGiven() {
	t := &testing.T{} // in a test: the test's *testing.T
	aggregatetest.Given(t, accounts, Opened{Owner: "ann"}).
		When(func(_ context.Context, a *Account) error { return a.Deposit(7) }).
		Then(Deposited{Amount: 7})

	aggregatetest.Given(t, accounts).
		When(func(_ context.Context, a *Account) error { return a.Deposit(7) }).
		ThenError(errNotOpen)
}
