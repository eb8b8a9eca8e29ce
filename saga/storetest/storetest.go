// Package storetest is the contract every saga.Store meets: creating,
// loading and saving at a version, conflicts between concurrent saves,
// listing by status, and the messages a save sends (sent when it
// succeeds, never when it is refused). Each store's tests run it:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) storetest.Subject { ... })
//	}
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/saga"
)

// Subject is a store under test.
type Subject struct {
	// Store is the store, empty of the saga names the suite uses (it
	// uses fresh ones per test).
	Store saga.Store
	// Sent returns the ids of the messages saves have sent so far to
	// topic (published, or relayed from the outbox). The suite waits for
	// them with Wait.
	Sent func(topic string) []string
}

// WaitTimeout bounds the suite's waits for relayed messages.
const WaitTimeout = 30 * time.Second

// Run runs the contract on the stores newSubject returns, one per subtest.
func Run(t *testing.T, newSubject func(t *testing.T) Subject) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, s Subject)
	}{
		{"CreateLoad", createLoad},
		{"LongIDNeverTruncated", longID},
		{"SaveAtVersion", saveAtVersion},
		{"ConcurrentSavesOneWins", concurrentSaves},
		{"ConcurrentSavesOfManyInstances", concurrentMany},
		{"List", list},
		{"MessagesSentWithTheSaveOnly", messages},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, newSubject(t)) })
	}
}

var seq struct {
	sync.Mutex
	n int
}

// fresh returns a saga name no other test uses.
func fresh() string {
	seq.Lock()
	defer seq.Unlock()
	seq.n++
	return fmt.Sprintf("st%d-%s", seq.n, watermill.NewShortUUID())
}

func instance(name, id string, version int64, status saga.Status) *saga.Instance {
	now := time.Now().UTC().Truncate(time.Millisecond)
	return &saga.Instance{
		Saga: name, ID: id, Status: status, Version: version,
		State: json.RawMessage(`{"n":1}`), Steps: []saga.StepRecord{{Name: "a", Status: saga.StepPending}},
		History: []saga.Entry{{At: now, Step: "a", What: "sent", MessageID: "m-1", MessageType: "A"}},
		Created: now, Updated: now,
	}
}

func publishNothing(context.Context, []saga.Outgoing) error { return nil }

// longID: an instance with the longest id is kept whole, and one with a
// longer id is refused or kept whole, never cut (a cut one is lost).
func longID(t *testing.T, s Subject) {
	ctx := context.Background()
	name := fresh()
	for _, n := range []int{saga.MaxIDLength, saga.MaxIDLength + 1} {
		id := strings.Repeat("x", n)
		err := s.Store.Save(ctx, instance(name, id, 1, saga.Running), 0, nil, publishNothing)
		if err != nil && n <= saga.MaxIDLength {
			t.Fatalf("id of %d bytes: %v", n, err)
		}
		if err != nil {
			continue
		}
		if _, err := s.Store.Load(ctx, name, id); err != nil {
			t.Errorf("id of %d bytes saved, then: %v", n, err)
		}
	}
	// Not stored cut: a saga with the id cut to the limit does not exist.
	if _, err := s.Store.Load(ctx, fresh(), strings.Repeat("x", saga.MaxIDLength)); !errors.Is(err, saga.ErrNotFound) {
		t.Errorf("Load of another saga: %v, want ErrNotFound", err)
	}
	other := fresh()
	long := strings.Repeat("y", saga.MaxIDLength+1)
	if err := s.Store.Save(ctx, instance(other, long, 1, saga.Running), 0, nil, publishNothing); err == nil {
		if _, err := s.Store.Load(ctx, other, long[:saga.MaxIDLength]); !errors.Is(err, saga.ErrNotFound) {
			t.Errorf("the id of %d bytes was stored cut to %d", len(long), saga.MaxIDLength)
		}
	}
}

func createLoad(t *testing.T, s Subject) {
	ctx := context.Background()
	name := fresh()
	if _, err := s.Store.Load(ctx, name, "i-1"); !errors.Is(err, saga.ErrNotFound) {
		t.Fatalf("Load of a missing instance: %v, want ErrNotFound", err)
	}
	in := instance(name, "i-1", 1, saga.Running)
	if err := s.Store.Save(ctx, in, 0, nil, publishNothing); err != nil {
		t.Fatal(err)
	}
	if err := s.Store.Save(ctx, instance(name, "i-1", 1, saga.Running), 0, nil, publishNothing); !errors.Is(err, saga.ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	got, err := s.Store.Load(ctx, name, "i-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 1 || got.Status != saga.Running || string(got.State) != `{"n":1}` || len(got.Steps) != 1 ||
		len(got.History) != 1 || got.History[0].MessageID != "m-1" || !got.Created.Equal(in.Created) {
		t.Errorf("loaded %+v, stored %+v", got, in)
	}
	if _, err := s.Store.Load(ctx, fresh(), "i-1"); !errors.Is(err, saga.ErrNotFound) {
		t.Errorf("the same id in another saga: %v, want ErrNotFound", err)
	}
}

func saveAtVersion(t *testing.T, s Subject) {
	ctx := context.Background()
	name := fresh()
	if err := s.Store.Save(ctx, instance(name, "i-1", 1, saga.Running), 0, nil, publishNothing); err != nil {
		t.Fatal(err)
	}
	next := instance(name, "i-1", 2, saga.Completed)
	next.State = json.RawMessage(`{"n":2}`)
	if err := s.Store.Save(ctx, next, 1, nil, publishNothing); err != nil {
		t.Fatal(err)
	}
	if err := s.Store.Save(ctx, instance(name, "i-1", 2, saga.Failed), 1, nil, publishNothing); !errors.Is(err, saga.ErrConflict) {
		t.Errorf("save at an old version: %v, want ErrConflict", err)
	}
	if err := s.Store.Save(ctx, instance(name, "i-2", 2, saga.Failed), 1, nil, publishNothing); !errors.Is(err, saga.ErrNotFound) {
		t.Errorf("save of a missing instance: %v, want ErrNotFound", err)
	}
	got, err := s.Store.Load(ctx, name, "i-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 2 || got.Status != saga.Completed || string(got.State) != `{"n":2}` {
		t.Errorf("loaded %+v", got)
	}
}

func concurrentSaves(t *testing.T, s Subject) {
	ctx := context.Background()
	name := fresh()
	if err := s.Store.Save(ctx, instance(name, "i-1", 1, saga.Running), 0, nil, publishNothing); err != nil {
		t.Fatal(err)
	}
	const n = 10
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			in := instance(name, "i-1", 2, saga.Running)
			in.State = json.RawMessage(fmt.Sprintf(`{"n":%d}`, 100+i))
			errs[i] = s.Store.Save(ctx, in, 1, nil, publishNothing)
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, saga.ErrConflict):
			t.Errorf("a losing save: %v, want ErrConflict", err)
		}
	}
	if won != 1 {
		t.Errorf("%d of %d concurrent saves at one version succeeded, want 1", won, n)
	}
}

// concurrentMany saves many instances at once, right and wrong, as a
// store that commits concurrent saves together sees them: each save keeps
// its own outcome.
func concurrentMany(t *testing.T, s Subject) {
	ctx := context.Background()
	name := fresh()
	const n = 20
	for i := range n {
		if err := s.Store.Save(ctx, instance(name, fmt.Sprint("i-", i), 1, saga.Running), 0, nil, publishNothing); err != nil {
			t.Fatal(err)
		}
	}
	type outcome struct {
		what string
		err  error
	}
	results := make(chan outcome, 4*n)
	var wg sync.WaitGroup
	for i := range n {
		id := fmt.Sprint("i-", i)
		wg.Go(func() {
			results <- outcome{"right " + id, s.Store.Save(ctx, instance(name, id, 2, saga.Completed), 1, nil, publishNothing)}
		})
		wg.Go(func() {
			results <- outcome{"stale " + id, s.Store.Save(ctx, instance(name, id, 8, saga.Failed), 7, nil, publishNothing)}
		})
		wg.Go(func() {
			results <- outcome{"create " + id, s.Store.Save(ctx, instance(name, id, 1, saga.Running), 0, nil, publishNothing)}
		})
		wg.Go(func() {
			results <- outcome{"new n-" + id, s.Store.Save(ctx, instance(name, "n-"+id, 1, saga.Running), 0, nil, publishNothing)}
		})
	}
	wg.Wait()
	close(results)
	for r := range results {
		var want error
		switch r.what[:4] {
		case "stal":
			want = saga.ErrConflict
		case "crea":
			want = saga.ErrExists
		}
		if (want == nil && r.err != nil) || (want != nil && !errors.Is(r.err, want)) {
			t.Errorf("%s: %v, want %v", r.what, r.err, want)
		}
	}
	all, err := s.Store.List(ctx, name, saga.Completed, 0)
	if err != nil || len(all) != n {
		t.Errorf("%d completed instances (%v), want %d", len(all), err, n)
	}
	for _, in := range all {
		if in.Version != 2 {
			t.Errorf("%s at version %d, want 2", in.ID, in.Version)
		}
	}
}

func list(t *testing.T, s Subject) {
	ctx := context.Background()
	name := fresh()
	for i, st := range []saga.Status{saga.Running, saga.NeedsAttention, saga.Running, saga.Completed} {
		in := instance(name, fmt.Sprintf("i-%d", i), 1, st)
		in.Created = in.Created.Add(time.Duration(i) * time.Second)
		if err := s.Store.Save(ctx, in, 0, nil, publishNothing); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(ins []*saga.Instance, err error) []string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, in := range ins {
			out = append(out, in.ID)
		}
		return out
	}
	for _, tc := range []struct {
		status saga.Status
		limit  int
		want   []string
	}{
		{"", 0, []string{"i-0", "i-1", "i-2", "i-3"}},
		{saga.Running, 0, []string{"i-0", "i-2"}},
		{saga.NeedsAttention, 0, []string{"i-1"}},
		{"", 2, []string{"i-0", "i-1"}},
		{saga.Failed, 0, nil},
	} {
		if got := ids(s.Store.List(ctx, name, tc.status, tc.limit)); !slices.Equal(got, tc.want) {
			t.Errorf("List(%q, %d) = %v, want %v", tc.status, tc.limit, got, tc.want)
		}
	}
}

func messages(t *testing.T, s Subject) {
	ctx := context.Background()
	name := fresh()
	topic := name + ".out"
	out := func(id string) []saga.Outgoing {
		return []saga.Outgoing{{Topic: topic, Msg: message.NewMessage(id, []byte(`{}`))}}
	}
	var published []saga.Outgoing
	var mu sync.Mutex
	publish := func(_ context.Context, o []saga.Outgoing) error {
		mu.Lock()
		published = append(published, o...)
		mu.Unlock()
		return nil
	}
	_ = published
	if err := s.Store.Save(ctx, instance(name, "i-1", 1, saga.Running), 0, out("created"), publish); err != nil {
		t.Fatal(err)
	}
	if err := s.Store.Save(ctx, instance(name, "i-1", 1, saga.Running), 0, out("refused-create"), publish); !errors.Is(err, saga.ErrExists) {
		t.Fatal(err)
	}
	if err := s.Store.Save(ctx, instance(name, "i-1", 2, saga.Running), 5, out("refused-save"), publish); !errors.Is(err, saga.ErrConflict) {
		t.Fatal(err)
	}
	if err := s.Store.Save(ctx, instance(name, "i-1", 2, saga.Running), 1, out("saved"), publish); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(WaitTimeout)
	for {
		got := s.Sent(topic)
		if slices.Contains(got, "created") && slices.Contains(got, "saved") {
			if slices.Contains(got, "refused-create") || slices.Contains(got, "refused-save") {
				t.Errorf("a refused save sent its messages: %v", got)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for the saves' messages; sent %v", WaitTimeout, got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
