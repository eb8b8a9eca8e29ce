package saga_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/millrace/millrace/cqrs"
	"github.com/millrace/millrace/framework"
	"github.com/millrace/millrace/framework/frameworktest"
	"github.com/millrace/millrace/saga"
)

// A saga with a group of 100 parallel steps: each reply to it comes on a
// key of its own, so the saga's subscription handles them at once and the
// replies race for the instance.

type Ping struct{ N int }
type Pong struct{ N int }
type Unping struct{ N int }
type Unpinged struct{ N int }

type fan struct {
	Seen  map[int]bool `json:"seen"`
	Count int          `json:"count"`
}

func TestSaga_100ConcurrentRepliesAreAllAppliedOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := frameworktest.New(t, frameworktest.WithConfig("handlers: {concurrency: 8}"))
		bus := cqrs.New(h.App)
		var steps []saga.Step[fan]
		for i := range 100 {
			steps = append(steps, saga.Step[fan]{
				Name:    fmt.Sprintf("ping-%d", i),
				Command: saga.Send(func(fan) Ping { return Ping{N: i} }),
				Succeeded: []saga.Reply[fan]{saga.On(func(s *fan, e Pong) {
					if s.Seen == nil {
						s.Seen = map[int]bool{}
					}
					s.Seen[e.N] = true
					s.Count++
				})},
				Compensation: saga.Send(func(fan) Unping { return Unping{N: i} }),
				Compensated:  []saga.Reply[fan]{saga.On[fan, Unpinged](nil)},
			})
		}
		m, err := saga.Register(bus, saga.Definition[fan]{Name: "fan", Stages: []saga.Stage[fan]{saga.Parallel[fan]{Steps: steps}}}, saga.NewMemoryStore(),
			saga.HandlerOptions(framework.Concurrency(8)))
		if err != nil {
			t.Fatal(err)
		}
		cqrs.HandleCommand(bus, func(ctx context.Context, p Ping) error {
			return cqrs.Publish(ctx, bus, Pong(p), framework.WithKey(fmt.Sprint("k", p.N)))
		}, framework.Concurrency(8))
		h.Start()
		if err := m.Start(context.Background(), "f-1", fan{}); err != nil {
			t.Fatal(err)
		}
		h.WaitUntil("the saga to complete", func() bool {
			_, in, err := m.Get(context.Background(), "f-1")
			return err == nil && in.Status == saga.Completed
		})
		s, in, _ := m.Get(context.Background(), "f-1")
		if s.Count != 100 || len(s.Seen) != 100 {
			t.Errorf("%d replies recorded, %d distinct; want each of the 100 once", s.Count, len(s.Seen))
		}
		// One start, 100 replies, each stored once.
		if in.Version != 101 {
			t.Errorf("version %d, want 101", in.Version)
		}
		t.Logf("stats %+v", m.Stats())
	})
}

func TestRegister_ChecksTheDefinition(t *testing.T) {
	ok := saga.Step[fan]{
		Name: "a", Command: saga.Send(func(fan) Ping { return Ping{} }),
		Succeeded: []saga.Reply[fan]{saga.On[fan, Pong](nil)}, NoCompensation: true,
	}
	with := func(change func(s *saga.Step[fan])) saga.Step[fan] {
		s := ok
		change(&s)
		return s
	}
	for _, tc := range []struct {
		name string
		def  saga.Definition[fan]
		want []string
	}{
		{"no name, no stages", saga.Definition[fan]{}, []string{"empty Name", "no Stages"}},
		{"duplicate step names", saga.Definition[fan]{Name: "x", Stages: []saga.Stage[fan]{ok, ok}}, []string{`step "a": two steps have this name`}},
		{"missing compensation", saga.Definition[fan]{Name: "x", Stages: []saga.Stage[fan]{with(func(s *saga.Step[fan]) { s.NoCompensation = false })}},
			[]string{"has no Compensation: give it one, or set NoCompensation: true"}},
		{"compensation without confirmation", saga.Definition[fan]{Name: "x", Stages: []saga.Stage[fan]{with(func(s *saga.Step[fan]) {
			s.NoCompensation = false
			s.Compensation = saga.Send(func(fan) Unping { return Unping{} })
		})}}, []string{"Compensation Unping has no Compensated event"}},
		{"unknown event type", saga.Definition[fan]{Name: "x", Stages: []saga.Stage[fan]{with(func(s *saga.Step[fan]) {
			s.Failed = []saga.Reply[fan]{{}}
		})}}, []string{"Failed lists an unknown event type"}},
		{"a command as an event", saga.Definition[fan]{Name: "x", Stages: []saga.Stage[fan]{with(func(s *saga.Step[fan]) {
			s.Failed = []saga.Reply[fan]{saga.On[fan, Ping](nil)}
		})}}, []string{"lists Ping, which is one of the saga's commands"}},
		{"success and failure alike", saga.Definition[fan]{Name: "x", Stages: []saga.Stage[fan]{with(func(s *saga.Step[fan]) {
			s.Failed = []saga.Reply[fan]{saga.On[fan, Pong](nil)}
		})}}, []string{"event type Pong is listed in Succeeded and in Failed"}},
		{"no command, no success", saga.Definition[fan]{Name: "x", Stages: []saga.Stage[fan]{saga.Step[fan]{Name: "b", NoCompensation: true}}},
			[]string{`step "b" has no Command`, `step "b" has no Succeeded event`}},
		{"a group of one", saga.Definition[fan]{Name: "x", Stages: []saga.Stage[fan]{saga.Parallel[fan]{Steps: []saga.Step[fan]{ok}}}},
			[]string{"Parallel group has 1 steps, needs at least 2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := frameworktest.New(t)
			_, err := saga.Register(cqrs.New(h.App), tc.def, saga.NewMemoryStore())
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	h := frameworktest.New(t)
	if _, err := saga.Register(cqrs.New(h.App), saga.Definition[fan]{Name: "x", Stages: []saga.Stage[fan]{ok}}, nil); err == nil || !strings.Contains(err.Error(), "nil Store") {
		t.Errorf("nil store: %v", err)
	}
}
