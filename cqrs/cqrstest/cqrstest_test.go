package cqrstest_test

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/millrace/millrace/cqrs"
	"github.com/millrace/millrace/cqrs/cqrstest"
)

type PlaceOrder struct{ ID string }
type OrderPlaced struct{ ID string }
type OrderRejected struct{ ID, Why string }

func TestSendThenAssertTheEventsItCaused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, bus := cqrstest.New(t)
		cqrs.HandleCommand(bus, func(ctx context.Context, c PlaceOrder) error {
			if c.ID == "" {
				return cqrs.Publish(ctx, bus, OrderRejected{Why: "no id"})
			}
			return cqrs.Publish(ctx, bus, OrderPlaced{ID: c.ID})
		})
		h.Start()
		first := cqrstest.Send(h, bus, PlaceOrder{ID: "o-1"})
		second := cqrstest.Send(h, bus, PlaceOrder{})

		placed := cqrstest.WaitEvents[OrderPlaced](h, bus, first, 1)
		if len(placed) != 1 || placed[0].ID != "o-1" {
			t.Errorf("placed %v, want o-1", placed)
		}
		rejected := cqrstest.WaitEvents[OrderRejected](h, bus, second, 1)
		if rejected[0].Why != "no id" {
			t.Errorf("rejected %v", rejected)
		}
		if got := cqrstest.Events[OrderPlaced](h, bus, second); len(got) != 0 {
			t.Errorf("the second flow placed %v", got)
		}
		if got := cqrstest.Events[OrderPlaced](h, bus, ""); len(got) != 1 {
			t.Errorf("every flow: %v", got)
		}
	})
}
