package aggregate_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/cqrs/aggregate"
	"github.com/millrace/millrace/cqrs/eventstore"
	"github.com/millrace/millrace/framework"
)

type millraceJSON = framework.JSON

func TestRepository_SaveThenLoadReplaysTheEvents(t *testing.T) {
	forEachStore(t, func(t *testing.T, s store) {
		ctx := context.Background()
		r := newRepo(t, s)
		a, err := r.Load(ctx, "a-1")
		if err != nil || a.Version() != 0 || a.ID() != "a-1" {
			t.Fatalf("Load of a new account = %+v, %v; want it empty at version 0", a, err)
		}
		must(t, a.Open("ann"))
		must(t, a.Deposit(50))
		must(t, a.Withdraw(20))
		if len(a.Uncommitted()) != 3 {
			t.Fatalf("uncommitted %v, want 3 events", a.Uncommitted())
		}
		must(t, r.Save(ctx, a))
		if a.Version() != 3 || len(a.Uncommitted()) != 0 {
			t.Fatalf("after Save: version %d, uncommitted %v; want 3 and none", a.Version(), a.Uncommitted())
		}
		got, err := r.Load(ctx, "a-1")
		must(t, err)
		if got.Owner != "ann" || got.Balance != 30 || got.Version() != 3 {
			t.Errorf("loaded %+v, want ann with 30 at version 3", got)
		}
		events, err := s.ReadStream(ctx, "account-a-1", 1, eventstore.ReadOptions{})
		must(t, err)
		if len(events) != 3 || events[1].Type != "Deposited.v2" || events[1].Metadata[millrace.MetadataEntityID] != "a-1" {
			t.Errorf("stored %+v; want 3 events, the second a Deposited.v2 with entity_id a-1", events)
		}
		if events[0].Metadata[millrace.MetadataCorrelationID] != events[0].ID {
			t.Errorf("the first event outside a handler starts a flow: correlation id %q, id %q", events[0].Metadata[millrace.MetadataCorrelationID], events[0].ID)
		}
	})
}

func TestRepository_ConcurrentSavesOneWinsTheOtherConflicts(t *testing.T) {
	forEachStore(t, func(t *testing.T, s store) {
		ctx := context.Background()
		r := newRepo(t, s)
		_, err := r.Handle(ctx, "a-1", func(_ context.Context, a *Account) error { return a.Open("ann") })
		must(t, err)
		for round := range 10 {
			const writers = 2
			loaded := make([]*Account, writers)
			for i := range loaded {
				loaded[i], err = r.Load(ctx, "a-1")
				must(t, err)
				must(t, loaded[i].Deposit(10+i))
			}
			errs := make([]error, writers)
			var wg sync.WaitGroup
			for i := range loaded {
				wg.Go(func() { errs[i] = r.Save(ctx, loaded[i]) })
			}
			wg.Wait()
			var won, lost int
			for i, err := range errs {
				var ce *eventstore.ConflictError
				switch {
				case err == nil:
					won++
				case errors.As(err, &ce):
					lost++
					if ce.Stream != "account-a-1" || ce.Expected != int64(1+round) || ce.Actual != int64(2+round) {
						t.Errorf("round %d: conflict %+v, want stream account-a-1 expected %d actual %d", round, ce, 1+round, 2+round)
					}
					if loaded[i].Version() != int64(1+round) || len(loaded[i].Uncommitted()) != 1 {
						t.Errorf("round %d: the loser changed: version %d, uncommitted %v", round, loaded[i].Version(), loaded[i].Uncommitted())
					}
				default:
					t.Fatalf("round %d: Save = %v, want nil or a ConflictError", round, err)
				}
			}
			if won != 1 || lost != 1 {
				t.Fatalf("round %d: %d saves won, %d conflicted; want one each", round, won, lost)
			}
		}
		a, err := r.Load(ctx, "a-1")
		must(t, err)
		if a.Version() != 11 || a.Moves != 10 {
			t.Errorf("after 10 rounds: version %d, %d moves; want 11 and 10", a.Version(), a.Moves)
		}
	})
}

func TestRepository_HandleRetriesOnConflictUntilEveryCommandLands(t *testing.T) {
	forEachStore(t, func(t *testing.T, s store) {
		ctx := context.Background()
		const writers, each = 8, 5
		r := newRepo(t, s, aggregate.Attempts(writers*each+1))
		_, err := r.Handle(ctx, "a-1", func(_ context.Context, a *Account) error { return a.Open("ann") })
		must(t, err)
		var wg sync.WaitGroup
		errs := make(chan error, writers*each)
		for range writers {
			wg.Go(func() {
				for range each {
					_, err := r.Handle(ctx, "a-1", func(_ context.Context, a *Account) error { return a.Deposit(1) })
					if err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		a, err := r.Load(ctx, "a-1")
		must(t, err)
		if a.Balance != writers*each || a.Version() != writers*each+1 {
			t.Errorf("balance %d at version %d, want %d at %d", a.Balance, a.Version(), writers*each, writers*each+1)
		}
	})
}

func TestRepository_HandleGivesUpAfterItsAttempts(t *testing.T) {
	s := eventstore.NewMemory()
	r := newRepo(t, s, aggregate.Attempts(3))
	ctx := context.Background()
	_, err := r.Handle(ctx, "a-1", func(_ context.Context, a *Account) error { return a.Open("ann") })
	must(t, err)
	calls := 0
	_, err = r.Handle(ctx, "a-1", func(ctx context.Context, a *Account) error {
		calls++
		// Another writer gets in between every load and save.
		if _, err := s.Append(ctx, "account-a-1", eventstore.Any, []eventstore.Event{mustEvent(t, Deposited{Amount: 1})}); err != nil {
			return err
		}
		return a.Deposit(5)
	})
	if !errors.Is(err, eventstore.ErrConflict) || !strings.Contains(err.Error(), "after 3 attempts") || calls != 3 {
		t.Errorf("Handle = %v after %d calls; want a conflict after 3 attempts", err, calls)
	}
}

func TestRepository_HandleReturnsTheDecisionsErrorAndSavesNothing(t *testing.T) {
	forEachStore(t, func(t *testing.T, s store) {
		ctx := context.Background()
		r := newRepo(t, s)
		_, err := r.Handle(ctx, "a-1", func(_ context.Context, a *Account) error {
			must(t, a.Open("ann"))
			return a.Withdraw(1) // records Opened, then refuses
		})
		if !errors.Is(err, errInsufficient) {
			t.Fatalf("Handle = %v, want %v", err, errInsufficient)
		}
		events, err := s.ReadStream(ctx, "account-a-1", 1, eventstore.ReadOptions{})
		if err != nil || len(events) != 0 {
			t.Errorf("stored %v, %v; want nothing", events, err)
		}
	})
}

// TestRepository_SnapshotPlusTailLoadsWhatFullReplayLoads: after every
// command of a random history, the account loaded from its latest
// snapshot and the events after it equals the one replayed from its first
// event, and loads read at most N events.
func TestRepository_SnapshotPlusTailLoadsWhatFullReplayLoads(t *testing.T) {
	forEachStore(t, func(t *testing.T, s store) {
		ctx := context.Background()
		const every = 7
		counted := &reads{store: s}
		snap := newRepo(t, counted, aggregate.Snapshots(s, eventstore.SnapshotPolicy{PerType: map[string]int{"account": every}}))
		full := newRepo(t, s)
		rng := rand.New(rand.NewPCG(1, 2))
		_, err := snap.Handle(ctx, "a-1", func(_ context.Context, a *Account) error { return a.Open("ann") })
		must(t, err)
		for i := range 60 {
			_, err := snap.Handle(ctx, "a-1", func(_ context.Context, a *Account) error {
				// One to three events per command, so saves cross
				// multiples of N as well as land on them.
				for range 1 + rng.IntN(3) {
					if rng.IntN(3) == 0 && a.Balance > 0 {
						must(t, a.Withdraw(1+rng.IntN(a.Balance)))
					} else {
						must(t, a.Deposit(1+rng.IntN(100)))
					}
				}
				return nil
			})
			must(t, err)
			counted.events = 0
			got, err := snap.Load(ctx, "a-1")
			must(t, err)
			if counted.events > every+2 {
				t.Errorf("command %d: a load with snapshots read %d events, want at most %d", i, counted.events, every+2)
			}
			want, err := full.Load(ctx, "a-1")
			must(t, err)
			if state(got) != state(want) {
				t.Fatalf("command %d: snapshot + tail %s, full replay %s", i, state(got), state(want))
			}
		}
	})
}

func TestRepository_SnapshotOfAnotherStateVersionIsIgnored(t *testing.T) {
	forEachStore(t, func(t *testing.T, s store) {
		ctx := context.Background()
		r := newRepo(t, s, aggregate.Snapshots(s, eventstore.SnapshotPolicy{Every: 1}))
		_, err := r.Handle(ctx, "a-1", func(_ context.Context, a *Account) error {
			must(t, a.Open("ann"))
			return a.Deposit(40)
		})
		must(t, err)
		// A snapshot of state version 2 that would decode into nonsense.
		must(t, s.SaveSnapshot(ctx, eventstore.Snapshot{StreamID: "account-a-1", Version: 2, StateVersion: 2, Type: "account", Payload: []byte(`{"balance":"forty"}`)}))
		def := accounts()
		// Version 1's snapshot is used by version 1's code.
		counted := &reads{store: s}
		v1 := newRepo(t, counted, aggregate.Snapshots(s, eventstore.SnapshotPolicy{}))
		a, err := v1.Load(ctx, "a-1")
		must(t, err)
		if a.Balance != 40 || counted.events != 0 {
			t.Errorf("state version 1: %+v after reading %d events, want 40 from the snapshot alone", a, counted.events)
		}
		// A state version without a snapshot reads the stream.
		def.StateVersion = 3
		v3, err := aggregate.NewRepository(s, def, aggregate.Snapshots(s, eventstore.SnapshotPolicy{}))
		must(t, err)
		a, err = v3.Load(ctx, "a-1")
		if err != nil || a.Balance != 40 || a.Version() != 2 {
			t.Errorf("state version 3: %+v, %v; want 40 at version 2 from the events", a, err)
		}
	})
}

func TestRepository_SnapshotThatDoesNotDecodeIsIgnored(t *testing.T) {
	s := eventstore.NewMemory()
	ctx := context.Background()
	r := newRepo(t, s, aggregate.Snapshots(s, eventstore.SnapshotPolicy{}))
	_, err := r.Handle(ctx, "a-1", func(_ context.Context, a *Account) error {
		must(t, a.Open("ann"))
		return a.Deposit(40)
	})
	must(t, err)
	must(t, s.SaveSnapshot(ctx, eventstore.Snapshot{StreamID: "account-a-1", Version: 2, StateVersion: 1, Type: "account", Payload: []byte(`{"balance":"forty"}`)}))
	a, err := r.Load(ctx, "a-1")
	if err != nil || a.Balance != 40 || a.Version() != 2 {
		t.Errorf("Load = %+v, %v; want 40 at version 2 from the events", a, err)
	}
}

func TestRepository_StateAsOfAVersionOrATime(t *testing.T) {
	forEachStore(t, func(t *testing.T, s store) {
		ctx := context.Background()
		r := newRepo(t, s, aggregate.Snapshots(s, eventstore.SnapshotPolicy{Every: 2}))
		_, err := r.Handle(ctx, "a-1", func(_ context.Context, a *Account) error { return a.Open("ann") })
		must(t, err)
		var times []time.Time
		for i := range 5 {
			_, err := r.Handle(ctx, "a-1", func(_ context.Context, a *Account) error { return a.Deposit(10 * (i + 1)) })
			must(t, err)
			events, err := s.ReadStream(ctx, "account-a-1", int64(i+2), eventstore.ReadOptions{To: int64(i + 2)})
			must(t, err)
			times = append(times, events[0].RecordedAt)
			// Let the store's clock move on (a database clock may count
			// microseconds), so that times tell the versions apart.
			for start := time.Now(); time.Since(start) < 5*time.Millisecond; {
				time.Sleep(time.Millisecond)
			}
		}
		balances := []int{10, 30, 60, 100, 150} // after versions 2..6
		for i, want := range balances {
			a, err := r.LoadVersion(ctx, "a-1", int64(i+2))
			if err != nil || a.Balance != want || a.Version() != int64(i+2) {
				t.Errorf("LoadVersion(%d) = %+v, %v; want balance %d", i+2, a, err, want)
			}
			a, err = r.LoadAsOf(ctx, "a-1", times[i])
			if err != nil || a.Balance != want || a.Version() != int64(i+2) {
				t.Errorf("LoadAsOf(time of version %d) = %+v, %v; want balance %d", i+2, a, err, want)
			}
		}
		a, err := r.LoadAsOf(ctx, "a-1", times[0].Add(-time.Hour))
		if err != nil || a.Version() != 0 || a.Owner != "" {
			t.Errorf("LoadAsOf(before the first event) = %+v, %v; want an empty account", a, err)
		}
		if _, err := r.LoadVersion(ctx, "a-1", 0); !errors.Is(err, eventstore.ErrInvalid) {
			t.Errorf("LoadVersion(0) = %v, want ErrInvalid", err)
		}
	})
}

func TestRepository_EventOfAnUnknownTypeFailsTheLoadNamingIt(t *testing.T) {
	s := eventstore.NewMemory()
	ctx := context.Background()
	_, err := s.Append(ctx, "account-a-1", eventstore.NoStream, []eventstore.Event{{Type: "Deposited.v1", Payload: []byte(`{"amount":1}`)}})
	must(t, err)
	_, err = newRepo(t, s).Load(ctx, "a-1")
	if err == nil || !strings.Contains(err.Error(), "Deposited.v1") || !strings.Contains(err.Error(), "upcaster") {
		t.Errorf("Load = %v, want an error naming Deposited.v1 and upcasters", err)
	}
}

func TestRepository_UpcastersApplyOnLoad(t *testing.T) {
	u := eventstore.NewUpcasters()
	type DepositedV1 struct {
		Cents int `json:"cents"`
	}
	must(t, u.Register("Deposited.v1", "Deposited.v2", func(e eventstore.Event) (eventstore.Event, error) {
		var old DepositedV1
		if err := (millraceJSON{}).Unmarshal(e.Payload, &old); err != nil {
			return e, err
		}
		e.Payload = fmt.Appendf(nil, `{"amount":%d}`, old.Cents/100)
		return e, nil
	}))
	s := eventstore.NewMemory(eventstore.UpcastWith(u))
	ctx := context.Background()
	_, err := s.Append(ctx, "account-a-1", eventstore.NoStream, []eventstore.Event{
		mustEvent(t, Opened{Owner: "ann"}),
		{Type: "Deposited.v1", Payload: []byte(`{"cents":4200}`)},
	})
	must(t, err)
	a, err := newRepo(t, s).Load(ctx, "a-1")
	if err != nil || a.Balance != 42 {
		t.Errorf("Load = %+v, %v; want 42 from the upcast v1 deposit", a, err)
	}
}

func TestRepository_RecordingAnEventOutsideTheDefinitionFailsTheSave(t *testing.T) {
	s := eventstore.NewMemory()
	r := newRepo(t, s)
	a, err := r.Load(context.Background(), "a-1")
	must(t, err)
	type Closed struct{}
	aggregate.Record(a, Closed{})
	if err := r.Save(context.Background(), a); err == nil || !strings.Contains(err.Error(), "Closed") {
		t.Errorf("Save = %v, want an error naming Closed", err)
	}
}

func TestNewRepository_RejectsBadDefinitionsNamingTheField(t *testing.T) {
	good := accounts()
	tests := []struct {
		name string
		def  func(d *aggregate.Definition[*Account])
		opts []aggregate.Option
		want string
	}{
		{"no type", func(d *aggregate.Definition[*Account]) { d.Type = "" }, nil, "Type is empty"},
		{"no New", func(d *aggregate.Definition[*Account]) { d.New = nil }, nil, "New is nil"},
		{"no events", func(d *aggregate.Definition[*Account]) { d.Events = nil }, nil, "Events is empty"},
		{"an event twice", func(d *aggregate.Definition[*Account]) {
			d.Events = append(d.Events, aggregate.Event[Opened]())
		}, nil, "Events[3]: Opened is there twice"},
		{"a zero EventType", func(d *aggregate.Definition[*Account]) {
			d.Events = append(d.Events, aggregate.EventType{})
		}, nil, "Events[3] was not made by aggregate.Event"},
		{"no attempts", func(*aggregate.Definition[*Account]) {}, []aggregate.Option{aggregate.Attempts(0)}, "Attempts(0)"},
		{"negative snapshot interval", func(*aggregate.Definition[*Account]) {}, []aggregate.Option{aggregate.Snapshots(eventstore.NewMemory(), eventstore.SnapshotPolicy{Every: -1})}, `"every"`},
		{"policy without store", func(*aggregate.Definition[*Account]) {}, []aggregate.Option{aggregate.Snapshots(nil, eventstore.SnapshotPolicy{Every: 5})}, "without a snapshot store"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := good
			d.Events = append([]aggregate.EventType(nil), good.Events...)
			tt.def(&d)
			_, err := aggregate.NewRepository(eventstore.NewMemory(), d, tt.opts...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewRepository = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if _, err := aggregate.NewRepository[*Account](nil, good); err == nil {
		t.Error("NewRepository(nil store): want an error")
	}
}

func state(a *Account) string {
	return fmt.Sprintf("%s@%d owner=%q balance=%d moves=%d", a.ID(), a.Version(), a.Owner, a.Balance, a.Moves)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustEvent(t testing.TB, v any) eventstore.Event {
	t.Helper()
	e, err := eventstore.NewEvent(millraceJSON{}, v, nil)
	must(t, err)
	return e
}
