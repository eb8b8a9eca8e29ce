package saga_test

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/millrace/millrace/cqrs"
	"github.com/millrace/millrace/framework/frameworktest"
	"github.com/millrace/millrace/saga"
)

type (
	Hold      struct{ ID string }
	Release   struct{ ID string }
	Acked     struct{ ID string }
	Book      struct{ ID string }
	Refused   struct{ ID string }
	holdState struct {
		ID    string `json:"id"`
		Acked int    `json:"acked"`
	}
)

// One event type confirms both a step and its compensation: which one it
// means follows from the step's status, every time (the kinds were once
// taken from a map's random order, leaving the saga stuck).
func TestSaga_OneEventTypeAnswersTheStepAndItsCompensation(t *testing.T) {
	for i := range 8 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := frameworktest.New(t, frameworktest.WithTimeout(time.Minute))
				bus := cqrs.New(h.App)
				cqrs.HandleCommand(bus, func(ctx context.Context, c Hold) error { return cqrs.Publish(ctx, bus, Acked(c)) })
				cqrs.HandleCommand(bus, func(ctx context.Context, c Release) error { return cqrs.Publish(ctx, bus, Acked(c)) })
				cqrs.HandleCommand(bus, func(ctx context.Context, c Book) error { return cqrs.Publish(ctx, bus, Refused(c)) })
				ack := saga.On(func(s *holdState, _ Acked) { s.Acked++ })
				m, err := saga.Register(bus, saga.Definition[holdState]{
					Name: "hold",
					Stages: []saga.Stage[holdState]{
						saga.Step[holdState]{
							Name:         "hold",
							Command:      saga.Send(func(s holdState) Hold { return Hold{s.ID} }),
							Succeeded:    []saga.Reply[holdState]{ack},
							Compensation: saga.Send(func(s holdState) Release { return Release{s.ID} }),
							Compensated:  []saga.Reply[holdState]{ack},
						},
						saga.Step[holdState]{
							Name:           "book",
							Command:        saga.Send(func(s holdState) Book { return Book{s.ID} }),
							Succeeded:      []saga.Reply[holdState]{saga.On[holdState, Acked](nil)},
							Failed:         []saga.Reply[holdState]{saga.On[holdState, Refused](nil)},
							NoCompensation: true,
						},
					},
				}, saga.NewMemoryStore())
				if err != nil {
					t.Fatal(err)
				}
				h.Start()
				if err := m.Start(context.Background(), "h-1", holdState{ID: "h-1"}); err != nil {
					t.Fatal(err)
				}
				h.WaitUntil("the saga to be compensated", func() bool {
					_, in, err := m.Get(context.Background(), "h-1")
					return err == nil && in.Status == saga.Compensated
				})
				if s, _, _ := m.Get(context.Background(), "h-1"); s.Acked != 2 {
					t.Errorf("acked %d times, want 2 (the hold, its release)", s.Acked)
				}
			})
		})
	}
}
