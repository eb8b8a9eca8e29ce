package readme_test

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/millrace/millrace/cqrs"
	"github.com/millrace/millrace/cqrs/cqrstest"
	"github.com/millrace/millrace/examples/readme"
	"github.com/millrace/millrace/framework/frameworktest"
	"github.com/millrace/millrace/saga"
)

// participants answer the checkout saga's commands; cards over 1000 cents
// are declined.
func participants(bus *cqrs.Bus) {
	cqrs.HandleCommand(bus, func(ctx context.Context, c readme.CreateOrder) error {
		return cqrs.Publish(ctx, bus, readme.OrderCreated(c))
	})
	cqrs.HandleCommand(bus, func(ctx context.Context, c readme.CancelOrder) error {
		return cqrs.Publish(ctx, bus, readme.OrderCanceled(c))
	})
	cqrs.HandleCommand(bus, func(ctx context.Context, c readme.Charge) error {
		if c.Cents > 1000 {
			return cqrs.Publish(ctx, bus, readme.Declined{OrderID: c.OrderID, Reason: "limit"})
		}
		return cqrs.Publish(ctx, bus, readme.Charged{OrderID: c.OrderID, PaymentID: "p-" + c.OrderID})
	})
	cqrs.HandleCommand(bus, func(ctx context.Context, c readme.Refund) error {
		return cqrs.Publish(ctx, bus, readme.Refunded{OrderID: c.OrderID})
	})
	cqrs.HandleCommand(bus, func(ctx context.Context, c readme.Reserve) error {
		return cqrs.Publish(ctx, bus, readme.Reserved(c))
	})
	cqrs.HandleCommand(bus, func(ctx context.Context, c readme.Release) error {
		return cqrs.Publish(ctx, bus, readme.Released(c))
	})
	cqrs.HandleCommand(bus, func(ctx context.Context, c readme.Ship) error {
		return cqrs.Publish(ctx, bus, readme.Shipped{OrderID: c.OrderID, Tracking: "t-" + c.OrderID})
	})
}

func TestREADME_CheckoutSaga(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, bus := cqrstest.New(t)
		participants(bus)
		m, err := readme.RegisterCheckout(bus, saga.NewMemoryStore())
		if err != nil {
			t.Fatal(err)
		}
		h.Start()
		ctx := context.Background()
		if err := cqrs.Send(ctx, bus, readme.StartCheckout{OrderID: "o-1", Cents: 500}); err != nil {
			t.Fatal(err)
		}
		if err := cqrs.Send(ctx, bus, readme.StartCheckout{OrderID: "o-2", Cents: 5000}); err != nil {
			t.Fatal(err)
		}
		ended := frameworktest.WaitPublished[saga.Ended](h, cqrs.Topic[saga.Ended](bus), 2)
		got := map[string]saga.Status{}
		for _, e := range ended {
			got[e.ID] = e.Status
		}
		if got["o-1"] != saga.Completed || got["o-2"] != saga.Compensated {
			t.Errorf("ended %v, want o-1 completed and o-2 compensated", got)
		}
		s, _, err := m.Get(ctx, "o-1")
		if err != nil || s.Tracking != "t-o-1" || s.PaymentID != "p-o-1" {
			t.Errorf("o-1: %+v, %v", s, err)
		}
	})
}

func TestREADME_Choreography(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, bus := cqrstest.New(t)
		readme.RegisterChoreography(bus)
		h.Start()
		if err := cqrs.Publish(context.Background(), bus, readme.OrderCreated{OrderID: "o-1"}); err != nil {
			t.Fatal(err)
		}
		if s := frameworktest.WaitPublished[readme.Shipped](h, cqrs.Topic[readme.Shipped](bus), 1); s[0].Tracking != "t-o-1" {
			t.Errorf("shipped %+v", s[0])
		}
	})
}
