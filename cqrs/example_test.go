package cqrs_test

import (
	"context"
	"fmt"
	"io"

	"github.com/millrace/millrace/cqrs"
	"github.com/millrace/millrace/framework"
)

// newExampleApp is an App on the in-memory transport, as an empty config
// file gives it.
func newExampleApp() (*framework.App, func()) {
	reg, _ := framework.Transports()
	cfg, _ := framework.Parse(nil, nil, reg)
	logger := framework.NewLogger(cfg, io.Discard)
	tr, cleanup, _ := framework.OpenTransport(context.Background(), cfg, reg, logger)
	app, _ := framework.New(cfg, logger, tr)
	return app, func() { _ = app.Stop(context.Background()); cleanup() }
}

func Example() {
	app, stop := newExampleApp()
	defer stop()
	bus := cqrs.New(app)

	notified := make(chan OrderPlaced)
	cqrs.HandleCommand(bus, func(ctx context.Context, c PlaceOrder) error {
		return cqrs.Publish(ctx, bus, OrderPlaced{ID: c.ID}) // sent when the handler succeeds
	})
	cqrs.HandleEvent(bus, "notify", func(ctx context.Context, e OrderPlaced) error {
		notified <- e
		return nil
	})
	cqrs.HandleCommandWithReply(bus, func(ctx context.Context, c ReserveTable) (TableReserved, error) {
		if c.Guests > 8 {
			return TableReserved{}, fmt.Errorf("no table for %d", c.Guests)
		}
		return TableReserved{Table: "t-" + c.ID}, nil
	})
	cqrs.HandleQuery(bus, func(ctx context.Context, q GetOrder) (OrderView, error) {
		return OrderView{ID: q.ID, Status: "placed"}, nil
	})
	if err := app.Start(context.Background()); err != nil {
		panic(err)
	}
	ctx := context.Background()

	if err := cqrs.Send(ctx, bus, PlaceOrder{ID: "o-1"}); err != nil {
		panic(err)
	}
	fmt.Println("notified:", (<-notified).ID)

	res, err := cqrs.Request[TableReserved](ctx, bus, ReserveTable{ID: "2", Guests: 4})
	fmt.Println("reserved:", res.Table, err)
	_, err = cqrs.Request[TableReserved](ctx, bus, ReserveTable{ID: "3", Guests: 12})
	fmt.Println("refused:", err)

	view, err := cqrs.Query[OrderView](ctx, bus, GetOrder{ID: "o-1"})
	fmt.Println("view:", view.Status, err)
	// Output:
	// notified: o-1
	// reserved: t-2 <nil>
	// refused: ReserveTable failed in its handler: no table for 12
	// view: placed <nil>
}
