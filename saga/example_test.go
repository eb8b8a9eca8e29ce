package saga_test

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/millrace/millrace/cqrs"
	"github.com/millrace/millrace/framework"
	"github.com/millrace/millrace/saga"
)

type Transfer struct {
	ID    string `json:"id"`
	Cents int    `json:"cents"`
}

type (
	Debit struct {
		ID    string
		Cents int
	}
	Debited struct{ ID string }
	Credit  struct {
		ID    string
		Cents int
	}
	Credited struct{ ID string }
	Undebit  struct{ ID string }
	Restored struct{ ID string }
)

// newApp is a service on the in-memory transport, as an empty config
// gives.
func newApp() *framework.App {
	reg, _ := framework.Transports()
	cfg, _ := framework.Parse(nil, []string{"MILLRACE_LOG_LEVEL=error"}, reg)
	logger := framework.NewLogger(cfg, io.Discard)
	tr, _, _ := framework.OpenTransport(context.Background(), cfg, reg, logger)
	app, _ := framework.New(cfg, logger, tr)
	return app
}

// A money transfer: debit one account, then credit the other; the debit
// is undone if the credit fails.
func ExampleRegister() {
	app := newApp()
	bus := cqrs.New(app)
	cqrs.HandleCommand(bus, func(ctx context.Context, c Debit) error { return cqrs.Publish(ctx, bus, Debited{c.ID}) })
	cqrs.HandleCommand(bus, func(ctx context.Context, c Credit) error { return cqrs.Publish(ctx, bus, Credited{c.ID}) })
	cqrs.HandleCommand(bus, func(ctx context.Context, c Undebit) error { return cqrs.Publish(ctx, bus, Restored(c)) })

	m, err := saga.Register(bus, saga.Definition[Transfer]{
		Name: "transfer",
		Stages: []saga.Stage[Transfer]{
			saga.Step[Transfer]{
				Name:         "debit",
				Command:      saga.Send(func(t Transfer) Debit { return Debit{t.ID, t.Cents} }),
				Succeeded:    []saga.Reply[Transfer]{saga.On[Transfer, Debited](nil)},
				Compensation: saga.Send(func(t Transfer) Undebit { return Undebit{t.ID} }),
				Compensated:  []saga.Reply[Transfer]{saga.On[Transfer, Restored](nil)},
			},
			saga.Step[Transfer]{
				Name:           "credit",
				Command:        saga.Send(func(t Transfer) Credit { return Credit{t.ID, t.Cents} }),
				Succeeded:      []saga.Reply[Transfer]{saga.On[Transfer, Credited](nil)},
				NoCompensation: true,
			},
		},
	}, saga.NewMemoryStore())
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	_ = app.Start(ctx)
	defer func() { _ = app.Stop(ctx) }()
	_ = m.Start(ctx, "t-1", Transfer{ID: "t-1", Cents: 500})
	for {
		if _, in, err := m.Get(ctx, "t-1"); err == nil && in.Status.Final() {
			fmt.Println(in.Status)
			for _, e := range in.History {
				fmt.Println(e.Step, e.What)
			}
			return
		}
		time.Sleep(time.Millisecond)
	}
	// Output:
	// completed
	//  started
	// debit sent
	// debit succeeded
	// credit sent
	// credit succeeded
	//  completed
}

// A definition is checked before anything runs: every problem at once.
func ExampleRegister_checked() {
	bus := cqrs.New(newApp())
	_, err := saga.Register(bus, saga.Definition[Transfer]{
		Name: "transfer",
		Stages: []saga.Stage[Transfer]{
			saga.Step[Transfer]{Name: "debit", Command: saga.Send(func(t Transfer) Debit { return Debit{t.ID, t.Cents} })},
		},
	}, saga.NewMemoryStore())
	fmt.Println(err)
	// Output:
	// saga "transfer": step "debit" has no Succeeded event
	// saga "transfer": step "debit" has no Compensation: give it one, or set NoCompensation: true
}
