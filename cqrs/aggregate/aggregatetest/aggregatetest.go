// Package aggregatetest tests event-sourced aggregates (package aggregate)
// as a specification: given the events that happened, when a command runs,
// then these events are recorded, or this error is returned.
//
//	func TestWithdraw_MoreThanTheBalanceIsRefused(t *testing.T) {
//		aggregatetest.Given(t, accounts, Deposited{Amount: 20}).
//			When(func(ctx context.Context, a *Account) error { return a.Withdraw(30) }).
//			ThenError(ErrInsufficientFunds)
//	}
//
// The given events are stored in an [eventstore.Memory] through the
// definition's codec and loaded as the repository loads them, so a test
// also checks that the events encode, decode and apply; the recorded
// events are saved the same way.
package aggregatetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/millrace/millrace/cqrs/aggregate"
	"github.com/millrace/millrace/cqrs/eventstore"
	"github.com/millrace/millrace/framework"
)

// ID is the id of the aggregate a case runs on.
const ID = "aggregatetest"

// Case is one given / when / then test of an aggregate.
type Case[A aggregate.Aggregate] struct {
	t     testing.TB
	repo  *aggregate.Repository[A]
	ran   bool
	state A
	got   []any
	err   error
}

// Given starts a case on the aggregate of def whose history is events (Go
// values of def's event types), stored in a fresh memory store.
func Given[A aggregate.Aggregate](t testing.TB, def aggregate.Definition[A], events ...any) *Case[A] {
	t.Helper()
	store := eventstore.NewMemory()
	repo, err := aggregate.NewRepository(store, def)
	if err != nil {
		t.Fatalf("aggregatetest: %v", err)
	}
	if len(events) > 0 {
		stored := make([]eventstore.Event, len(events))
		known := map[string]bool{}
		for _, et := range def.Events {
			known[et.Name()] = true
		}
		for i, v := range events {
			if name := framework.TypeName(v); !known[name] {
				t.Fatalf("aggregatetest: given event %d is a %T (%s), not one of the Events of %q", i, v, name, def.Type)
			}
			e, err := eventstore.NewEvent(repo.Definition().Codec, v, nil)
			if err != nil {
				t.Fatalf("aggregatetest: given event %d: %v", i, err)
			}
			stored[i] = e
		}
		if _, err := store.Append(context.Background(), def.Stream(ID), eventstore.NoStream, stored); err != nil {
			t.Fatalf("aggregatetest: given events: %v", err)
		}
	}
	return &Case[A]{t: t, repo: repo}
}

// When loads the aggregate from the given events, runs decide on it (a
// command: it records events or returns an error) and saves what it
// recorded. A failure to load or save fails the test.
func (c *Case[A]) When(decide func(ctx context.Context, a A) error) *Case[A] {
	c.t.Helper()
	ctx := context.Background()
	a, err := c.repo.Load(ctx, ID)
	if err != nil {
		c.t.Fatalf("aggregatetest: load the given events: %v", err)
	}
	c.ran = true
	c.err = decide(ctx, a)
	c.got = append([]any(nil), a.Uncommitted()...)
	if c.err == nil {
		if err := c.repo.Save(ctx, a); err != nil {
			c.t.Fatalf("aggregatetest: save the recorded events: %v", err)
		}
	}
	c.state = a
	return c
}

// Then asserts that the command succeeded and recorded exactly want, in
// order (compared with reflect.DeepEqual).
func (c *Case[A]) Then(want ...any) *Case[A] {
	c.t.Helper()
	c.mustHaveRun("Then")
	if c.err != nil {
		c.t.Errorf("aggregatetest: want events %s, the command failed: %v", list(want), c.err)
		return c
	}
	if len(want) == 0 {
		want = nil
	}
	got := c.got
	if len(got) == 0 {
		got = nil
	}
	if !reflect.DeepEqual(got, want) {
		c.t.Errorf("aggregatetest: recorded events\n got: %s\nwant: %s", list(got), list(want))
	}
	return c
}

// ThenError asserts that the command failed with an error that matches
// want (errors.Is), having recorded nothing that was saved.
func (c *Case[A]) ThenError(want error) *Case[A] {
	c.t.Helper()
	c.mustHaveRun("ThenError")
	switch {
	case c.err == nil:
		c.t.Errorf("aggregatetest: want error %v, the command succeeded recording %s", want, list(c.got))
	case !errors.Is(c.err, want):
		c.t.Errorf("aggregatetest: error %v, want one that is %v", c.err, want)
	}
	return c
}

// ThenState calls check with the aggregate after the command (and the save
// of what it recorded, if it succeeded).
func (c *Case[A]) ThenState(check func(t testing.TB, a A)) *Case[A] {
	c.t.Helper()
	c.mustHaveRun("ThenState")
	check(c.t, c.state)
	return c
}

func (c *Case[A]) mustHaveRun(then string) {
	c.t.Helper()
	if !c.ran {
		c.t.Fatalf("aggregatetest: %s before When", then)
	}
}

func list(events []any) string {
	if len(events) == 0 {
		return "(none)"
	}
	parts := make([]string, len(events))
	for i, e := range events {
		parts[i] = fmt.Sprintf("%T%+v", e, e)
	}
	return strings.Join(parts, ", ")
}
