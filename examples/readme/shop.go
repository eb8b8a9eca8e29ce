package readme

import (
	"context"
	"fmt"

	"github.com/millrace/millrace/cqrs"
	"github.com/millrace/millrace/framework"
)

type ReserveTable struct {
	ID     string `json:"id"`
	Guests int    `json:"guests"`
}
type TableReserved struct {
	Table string `json:"table"`
}
type GetOrder struct {
	OrderID string `json:"order_id"`
}
type OrderView struct{ OrderID, Status string }

func RegisterShop(bus *cqrs.Bus, views func(orderID string) OrderView) {
	cqrs.HandleCommand(bus, func(ctx context.Context, c PlaceOrder) error {
		return cqrs.Publish(ctx, bus, OrderPlaced(c)) // sent when the handler succeeds
	})
	cqrs.HandleEvent(bus, "notify", func(ctx context.Context, e OrderPlaced) error {
		framework.Logger(ctx).Info("order placed", "order_id", e.OrderID)
		return nil
	})
	cqrs.HandleCommandWithReply(bus, func(ctx context.Context, c ReserveTable) (TableReserved, error) {
		if c.Guests > 8 {
			return TableReserved{}, fmt.Errorf("no table for %d guests", c.Guests) // the caller's error
		}
		return TableReserved{Table: "t-" + c.ID}, nil
	})
	cqrs.HandleQuery(bus, func(ctx context.Context, q GetOrder) (OrderView, error) {
		return views(q.OrderID), nil
	})
}

func Shop(ctx context.Context, bus *cqrs.Bus) (TableReserved, OrderView, error) {
	if err := cqrs.Send(ctx, bus, PlaceOrder{OrderID: "o-1"}); err != nil { // one handler, somewhere
		return TableReserved{}, OrderView{}, err
	}
	res, err := cqrs.Request[TableReserved](ctx, bus, ReserveTable{ID: "2", Guests: 4}) // reply or error, bounded by ctx
	if err != nil {
		return TableReserved{}, OrderView{}, err
	}
	view, err := cqrs.Query[OrderView](ctx, bus, GetOrder{OrderID: "o-1"}) // in process, or remote
	return res, view, err
}
