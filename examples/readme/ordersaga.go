package readme

import (
	"context"
	"database/sql"
	"time"

	"github.com/millrace/millrace/cqrs"
	"github.com/millrace/millrace/cqrs/outbox"
	"github.com/millrace/millrace/saga"
	sagasql "github.com/millrace/millrace/saga/sql"
)

// The order saga of the README: its state, then its commands and the
// events that answer them (each participant is a plain cqrs handler).

type Checkout struct {
	OrderID   string `json:"order_id"`
	Cents     int    `json:"cents"`
	PaymentID string `json:"payment_id,omitempty"`
	Tracking  string `json:"tracking,omitempty"`
}

type (
	StartCheckout struct {
		OrderID string
		Cents   int
	}
	CreateOrder   struct{ OrderID string }
	OrderCreated  struct{ OrderID string }
	CancelOrder   struct{ OrderID string }
	OrderCanceled struct{ OrderID string }
	Charge        struct {
		OrderID string
		Cents   int
	}
	Charged    struct{ OrderID, PaymentID string }
	Declined   struct{ OrderID, Reason string }
	Refund     struct{ OrderID, PaymentID string }
	Refunded   struct{ OrderID string }
	Reserve    struct{ OrderID string }
	Reserved   struct{ OrderID string }
	OutOfStock struct{ OrderID string }
	Release    struct{ OrderID string }
	Released   struct{ OrderID string }
	Ship       struct{ OrderID string }
	Shipped    struct{ OrderID, Tracking string }
)

// CheckoutSaga creates the order, charges the card and reserves the stock
// at once, then ships. When a step fails, the steps that had completed
// are undone, newest first: release, refund, cancel.
func CheckoutSaga() saga.Definition[Checkout] {
	return saga.Definition[Checkout]{
		Name: "checkout",
		Start: saga.StartOnCommand(func(c StartCheckout) (string, Checkout) {
			return c.OrderID, Checkout{OrderID: c.OrderID, Cents: c.Cents}
		}),
		Stages: []saga.Stage[Checkout]{
			saga.Step[Checkout]{
				Name:         "create",
				Command:      saga.Send(func(s Checkout) CreateOrder { return CreateOrder{s.OrderID} }),
				Succeeded:    []saga.Reply[Checkout]{saga.On[Checkout, OrderCreated](nil)},
				Timeout:      30 * time.Second,
				Compensation: saga.Send(func(s Checkout) CancelOrder { return CancelOrder{s.OrderID} }),
				Compensated:  []saga.Reply[Checkout]{saga.On[Checkout, OrderCanceled](nil)},
			},
			saga.Parallel[Checkout]{Steps: []saga.Step[Checkout]{{
				Name:         "charge",
				Command:      saga.Send(func(s Checkout) Charge { return Charge{s.OrderID, s.Cents} }),
				Succeeded:    []saga.Reply[Checkout]{saga.On(func(s *Checkout, e Charged) { s.PaymentID = e.PaymentID })},
				Failed:       []saga.Reply[Checkout]{saga.On[Checkout, Declined](nil)},
				Timeout:      30 * time.Second,
				Compensation: saga.Send(func(s Checkout) Refund { return Refund{s.OrderID, s.PaymentID} }),
				Compensated:  []saga.Reply[Checkout]{saga.On[Checkout, Refunded](nil)},
				// A refund that is still not confirmed after the payment
				// service's retries: the saga needs attention.
				CompensationTimeout: 10 * time.Minute,
			}, {
				Name:         "reserve",
				Command:      saga.Send(func(s Checkout) Reserve { return Reserve{s.OrderID} }),
				Succeeded:    []saga.Reply[Checkout]{saga.On[Checkout, Reserved](nil)},
				Failed:       []saga.Reply[Checkout]{saga.On[Checkout, OutOfStock](nil)},
				Timeout:      30 * time.Second,
				Compensation: saga.Send(func(s Checkout) Release { return Release{s.OrderID} }),
				Compensated:  []saga.Reply[Checkout]{saga.On[Checkout, Released](nil)},
			}}},
			saga.Step[Checkout]{
				Name:           "ship",
				Command:        saga.Send(func(s Checkout) Ship { return Ship{s.OrderID} }),
				Succeeded:      []saga.Reply[Checkout]{saga.On(func(s *Checkout, e Shipped) { s.Tracking = e.Tracking })},
				Timeout:        time.Minute,
				NoCompensation: true, // a parcel that left cannot be unsent
			},
		},
	}
}

// RegisterCheckout runs the saga on bus with its instances in store:
// saga.NewMemoryStore() in tests, saga/sql in production.
func RegisterCheckout(bus *cqrs.Bus, store saga.Store) (*saga.Manager[Checkout], error) {
	return saga.Register(bus, CheckoutSaga(), store)
}

// NewCheckoutStore keeps the instances in PostgreSQL: each transition's
// state and the commands it sends commit in one outbox transaction.
func NewCheckoutStore(ctx context.Context, db *sql.DB, ob *outbox.Outbox) (*sagasql.Store, error) {
	return sagasql.New(ctx, db, sagasql.DefaultConfig(outbox.Postgres), ob)
}
