package aggregate_test

import (
	"context"
	"testing"

	"pgregory.net/rapid"

	"github.com/millrace/millrace/cqrs/aggregate"
	"github.com/millrace/millrace/cqrs/eventstore"
)

// TestRepository_SnapshotsNeverChangeWhatALoadSees is a property test: for
// any snapshot interval, any history of commands (each recording one to
// four events, some refused) and any state version in between, the account
// loaded with snapshots equals the one replayed from its first event, at
// the latest version and at every earlier one, and a load reads fewer
// events than the interval plus the largest command.
func TestRepository_SnapshotsNeverChangeWhatALoadSees(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ctx := context.Background()
		s := eventstore.NewMemory()
		every := rapid.IntRange(1, 12).Draw(t, "every")
		counted := &reads{store: s}
		snap := newRepo(t, counted, aggregate.Snapshots(s, eventstore.SnapshotPolicy{PerType: map[string]int{"account": every}}))
		full := newRepo(t, s)
		if _, err := snap.Handle(ctx, "a", func(_ context.Context, a *Account) error { return a.Open("ann") }); err != nil {
			t.Fatal(err)
		}
		commands := rapid.IntRange(1, 40).Draw(t, "commands")
		for i := range commands {
			moves := rapid.SliceOfN(rapid.IntRange(-50, 100), 1, 4).Draw(t, "moves")
			_, err := snap.Handle(ctx, "a", func(_ context.Context, a *Account) error {
				for _, m := range moves {
					var err error
					if m < 0 {
						err = a.Withdraw(-m)
					} else {
						err = a.Deposit(m + 1)
					}
					if err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil && err != errInsufficient {
				t.Fatalf("command %d: %v", i, err)
			}
			counted.events = 0
			got, err := snap.Load(ctx, "a")
			if err != nil {
				t.Fatal(err)
			}
			if counted.events >= every+4 {
				t.Fatalf("command %d: a load read %d events with snapshots every %d", i, counted.events, every)
			}
			want, err := full.Load(ctx, "a")
			if err != nil {
				t.Fatal(err)
			}
			if state(got) != state(want) {
				t.Fatalf("command %d: with snapshots %s, replayed %s", i, state(got), state(want))
			}
		}
		v := rapid.Int64Range(1, int64(commands*4+1)).Draw(t, "version")
		got, err := snap.LoadVersion(ctx, "a", v)
		if err != nil {
			t.Fatal(err)
		}
		want, err := full.LoadVersion(ctx, "a", v)
		if err != nil {
			t.Fatal(err)
		}
		if state(got) != state(want) {
			t.Fatalf("at version %d: with snapshots %s, replayed %s", v, state(got), state(want))
		}
	})
}
