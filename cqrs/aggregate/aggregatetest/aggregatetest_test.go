package aggregatetest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/millrace/millrace/cqrs/aggregate"
	"github.com/millrace/millrace/cqrs/aggregate/aggregatetest"
)

type Opened struct{ Owner string }

type Deposited struct{ Amount int }

var errNotOpen = errors.New("not open")

type Account struct {
	aggregate.Root
	Owner   string
	Balance int
}

func (a *Account) Apply(event any) {
	switch e := event.(type) {
	case Opened:
		a.Owner = e.Owner
	case Deposited:
		a.Balance += e.Amount
	}
}

func (a *Account) Deposit(n int) error {
	if a.Owner == "" {
		return errNotOpen
	}
	aggregate.Record(a, Deposited{Amount: n})
	return nil
}

var accounts = aggregate.Definition[*Account]{
	Type:   "account",
	New:    func() *Account { return &Account{} },
	Events: []aggregate.EventType{aggregate.Event[Opened](), aggregate.Event[Deposited]()},
}

func deposit(n int) func(context.Context, *Account) error {
	return func(_ context.Context, a *Account) error { return a.Deposit(n) }
}

func TestCase_PassesWhatHappens(t *testing.T) {
	aggregatetest.Given(t, accounts, Opened{Owner: "ann"}, Deposited{Amount: 5}).
		When(deposit(7)).
		Then(Deposited{Amount: 7}).
		ThenState(func(t testing.TB, a *Account) {
			if a.Balance != 12 || a.Version() != 3 {
				t.Errorf("balance %d at version %d, want 12 at 3", a.Balance, a.Version())
			}
		})
	aggregatetest.Given(t, accounts).When(deposit(7)).ThenError(errNotOpen)
	aggregatetest.Given(t, accounts, Opened{Owner: "ann"}).
		When(func(context.Context, *Account) error { return nil }).
		Then()
}

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	errors []string
	fatal  bool
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	r.fatal = true
	panic(r)
}

func run(t *testing.T, f func(tb testing.TB)) *recorder {
	r := &recorder{TB: t}
	func() {
		defer func() {
			if p := recover(); p != nil && p != r {
				panic(p)
			}
		}()
		f(r)
	}()
	return r
}

func TestCase_ReportsWhatDiffers(t *testing.T) {
	tests := []struct {
		name string
		run  func(tb testing.TB)
		want string
	}{
		{"other events", func(tb testing.TB) {
			aggregatetest.Given(tb, accounts, Opened{Owner: "ann"}).When(deposit(7)).Then(Deposited{Amount: 8})
		}, "want: aggregatetest_test.Deposited{Amount:8}"},
		{"events but it failed", func(tb testing.TB) {
			aggregatetest.Given(tb, accounts).When(deposit(7)).Then(Deposited{Amount: 7})
		}, "the command failed: not open"},
		{"error but it succeeded", func(tb testing.TB) {
			aggregatetest.Given(tb, accounts, Opened{Owner: "ann"}).When(deposit(7)).ThenError(errNotOpen)
		}, "the command succeeded recording aggregatetest_test.Deposited{Amount:7}"},
		{"another error", func(tb testing.TB) {
			aggregatetest.Given(tb, accounts).When(deposit(7)).ThenError(errors.New("other"))
		}, "error not open, want one that is other"},
		{"an event the definition lacks", func(tb testing.TB) {
			type Closed struct{}
			aggregatetest.Given(tb, accounts, Closed{})
		}, "not one of the Events"},
		{"then before when", func(tb testing.TB) {
			aggregatetest.Given(tb, accounts).Then()
		}, "Then before When"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, tt.run)
			if len(r.errors) != 1 || !strings.Contains(r.errors[0], tt.want) {
				t.Errorf("reported %q, want one failure containing %q", r.errors, tt.want)
			}
		})
	}
}
