package saga_test

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/millrace/millrace/cqrs"
	"github.com/millrace/millrace/framework/frameworktest"
	"github.com/millrace/millrace/saga"
)

type TransferRequested struct {
	ID    string
	Cents int
}

func TestSaga_StartedByAnEventOncePerInstance(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := frameworktest.New(t)
		bus := cqrs.New(h.App)
		cqrs.HandleCommand(bus, func(ctx context.Context, c Debit) error { return cqrs.Publish(ctx, bus, Debited{c.ID}) })
		m, err := saga.Register(bus, saga.Definition[Transfer]{
			Name: "transfer",
			Start: saga.StartOnEvent(func(e TransferRequested) (string, Transfer) {
				return e.ID, Transfer{ID: e.ID, Cents: e.Cents}
			}),
			Stages: []saga.Stage[Transfer]{saga.Step[Transfer]{
				Name:           "debit",
				Command:        saga.Send(func(t Transfer) Debit { return Debit{t.ID, t.Cents} }),
				Succeeded:      []saga.Reply[Transfer]{saga.On[Transfer, Debited](nil)},
				NoCompensation: true,
			}},
		}, saga.NewMemoryStore())
		if err != nil {
			t.Fatal(err)
		}
		h.Start()
		ctx := context.Background()
		for range 2 { // the second is a redelivery: it starts nothing
			if err := cqrs.Publish(ctx, bus, TransferRequested{ID: "t-7", Cents: 70}); err != nil {
				t.Fatal(err)
			}
		}
		h.WaitUntil("the transfer to complete", func() bool {
			_, in, err := m.Get(ctx, "t-7")
			return err == nil && in.Status == saga.Completed
		})
		h.WaitUntil("the second start to be ignored", func() bool { return m.Stats().Ignored == 1 })
		if s, _, _ := m.Get(ctx, "t-7"); s.Cents != 70 {
			t.Errorf("state %+v", s)
		}
		if st := m.Stats(); st.Started != 1 {
			t.Errorf("%d started, want 1", st.Started)
		}
	})
}

func TestSaga_LongNameAndIDAreRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := frameworktest.New(t)
		bus := cqrs.New(h.App)
		def := func(name string) saga.Definition[Transfer] {
			return saga.Definition[Transfer]{Name: name, Stages: []saga.Stage[Transfer]{saga.Step[Transfer]{
				Name:           "debit",
				Command:        saga.Send(func(t Transfer) Debit { return Debit{t.ID, t.Cents} }),
				Succeeded:      []saga.Reply[Transfer]{saga.On[Transfer, Debited](nil)},
				NoCompensation: true,
			}}}
		}
		if _, err := saga.Register(bus, def(strings.Repeat("n", saga.MaxNameLength+1)), saga.NewMemoryStore()); err == nil || !strings.Contains(err.Error(), "more than 100") {
			t.Errorf("a name of 101 bytes: %v", err)
		}
		m, err := saga.Register(bus, def("long"), saga.NewMemoryStore())
		if err != nil {
			t.Fatal(err)
		}
		h.Start()
		if err := m.Start(context.Background(), strings.Repeat("i", saga.MaxIDLength+1), Transfer{}); err == nil || !strings.Contains(err.Error(), "more than 200") {
			t.Errorf("an id of 201 bytes: %v", err)
		}
	})
}
