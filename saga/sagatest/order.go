// Package sagatest is an order saga and its participants, for testing
// sagas on any transport and store: the order flow (create the order;
// charge the payment and reserve the stock at once; schedule shipping),
// participants whose behaviour a test chooses per step and instance, and
// their own records of what they applied, which a test checks for steps or
// compensations applied twice.
//
//	world := sagatest.NewWorld("t1-")                       // topics prefixed, for a shared broker
//	world.Register(bus)                                     // the participants' handlers
//	m, err := saga.Register(bus, world.Definition(), store, world.Options()...)
//	world.Behave("charge", sagatest.Decline)                // every charge is declined
//	err = m.Start(ctx, "o-1", sagatest.Order{ID: "o-1", Amount: 10, Items: 2})
package sagatest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/millrace/millrace/cqrs"
	"github.com/millrace/millrace/framework"
	"github.com/millrace/millrace/saga"
)

// Order is the saga's state.
type Order struct {
	ID          string `json:"id"`
	Amount      int    `json:"amount"`
	Items       int    `json:"items"`
	PaymentID   string `json:"payment_id,omitempty"`
	Reservation string `json:"reservation,omitempty"`
	Tracking    string `json:"tracking,omitempty"`
	Refunded    bool   `json:"refunded,omitempty"`
	Released    bool   `json:"released,omitempty"`
	Cancelled   bool   `json:"cancelled,omitempty"`
	Declined    string `json:"declined,omitempty"`
}

// The commands and events of the order flow. Each carries the order id.
type (
	PlaceOrder struct {
		ID            string
		Amount, Items int
	}
	CreateOrder    struct{ ID string }
	OrderCreated   struct{ ID string }
	OrderRejected  struct{ ID string }
	CancelOrder    struct{ ID string }
	OrderCancelled struct{ ID string }
	ChargePayment  struct {
		ID     string
		Amount int
	}
	PaymentCharged  struct{ ID, PaymentID string }
	PaymentDeclined struct{ ID, Reason string }
	RefundPayment   struct{ ID, PaymentID string }
	PaymentRefunded struct{ ID string }
	RefundFailed    struct{ ID, Reason string }
	ReserveStock    struct {
		ID    string
		Items int
	}
	StockReserved     struct{ ID, Reservation string }
	OutOfStock        struct{ ID string }
	ReleaseStock      struct{ ID, Reservation string }
	StockReleased     struct{ ID string }
	ScheduleShipping  struct{ ID string }
	ShippingScheduled struct{ ID, Tracking string }
	ShippingFailed    struct{ ID string }
)

// Steps are the saga's step names, in definition order.
var Steps = []string{"create", "charge", "reserve", "ship"}

// Behaviour is how a participant answers a command.
type Behaviour int

const (
	// Succeed publishes the step's success event (the default).
	Succeed Behaviour = iota
	// Decline publishes the step's failure event.
	Decline
	// Silent answers nothing: the step times out.
	Silent
	// Error fails the handler: the middleware retries, then poisons it.
	Error
)

// World is the participants of the order flow and their records.
type World struct {
	prefix  string
	timeout time.Duration
	mu      sync.Mutex
	behave  map[string]Behaviour // "step" or "step/id" or "undo:step"...
	applied map[string][]string  // "id/step/do|undo" -> distinct message ids applied
	seen    map[string]bool      // message ids applied
	order   map[string][]string  // id -> "do:step"/"undo:step" in the order applied
}

// NewWorld returns the participants, with every topic of the flow
// prefixed by prefix (see [World.Options]) and step timeouts of 5s.
func NewWorld(prefix string) *World {
	return &World{
		prefix: prefix, timeout: 5 * time.Second,
		behave: map[string]Behaviour{}, applied: map[string][]string{}, seen: map[string]bool{}, order: map[string][]string{},
	}
}

// SetTimeout sets the steps' timeout (and the compensations', doubled).
func (w *World) SetTimeout(d time.Duration) { w.timeout = d }

// Behave sets how step's participant answers ("undo:<step>" for its
// compensation), for every instance, or for instance id when one is given.
func (w *World) Behave(step string, b Behaviour, id ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	key := step
	if len(id) > 0 {
		key = step + "/" + id[0]
	}
	w.behave[key] = b
}

func (w *World) behaviour(step, id string) Behaviour {
	w.mu.Lock()
	defer w.mu.Unlock()
	if b, ok := w.behave[step+"/"+id]; ok {
		return b
	}
	return w.behave[step]
}

// BusOptions route every type of the flow to a topic with the world's
// prefix; give them to cqrs.New.
func (w *World) BusOptions() []cqrs.Option {
	p := w.prefix
	return []cqrs.Option{
		cqrs.Route[PlaceOrder](p + "orders.place"),
		cqrs.Route[CreateOrder](p + "orders.create"), cqrs.Route[CancelOrder](p + "orders.cancel"),
		cqrs.Route[OrderCreated](p + "orders.events"), cqrs.Route[OrderRejected](p + "orders.events"), cqrs.Route[OrderCancelled](p + "orders.events"),
		cqrs.Route[ChargePayment](p + "payments.charge"), cqrs.Route[RefundPayment](p + "payments.refund"),
		cqrs.Route[PaymentCharged](p + "payments.events"), cqrs.Route[PaymentDeclined](p + "payments.events"),
		cqrs.Route[PaymentRefunded](p + "payments.events"), cqrs.Route[RefundFailed](p + "payments.events"),
		cqrs.Route[ReserveStock](p + "stock.reserve"), cqrs.Route[ReleaseStock](p + "stock.release"),
		cqrs.Route[StockReserved](p + "stock.events"), cqrs.Route[OutOfStock](p + "stock.events"), cqrs.Route[StockReleased](p + "stock.events"),
		cqrs.Route[ScheduleShipping](p + "shipping.schedule"),
		cqrs.Route[ShippingScheduled](p + "shipping.events"), cqrs.Route[ShippingFailed](p + "shipping.events"),
		cqrs.Route[saga.Ended](p + "saga.ended"), cqrs.Route[saga.AttentionNeeded](p + "saga.attention"),
	}
}

// Options are the saga options that go with the world: its control topic
// prefixed.
func (w *World) Options() []saga.Option {
	return []saga.Option{saga.ControlTopic(w.prefix + "saga.order")}
}

// Definition is the order saga: create (cancel to undo); charge (refund)
// and reserve (release) in parallel; ship (cannot be undone).
func (w *World) Definition() saga.Definition[Order] {
	return saga.Definition[Order]{
		Name: "order",
		Start: saga.StartOnCommand(func(c PlaceOrder) (string, Order) {
			return c.ID, Order{ID: c.ID, Amount: c.Amount, Items: c.Items}
		}),
		Stages: []saga.Stage[Order]{
			saga.Step[Order]{
				Name:                "create",
				Command:             saga.Send(func(o Order) CreateOrder { return CreateOrder{ID: o.ID} }),
				Succeeded:           []saga.Reply[Order]{saga.On[Order, OrderCreated](nil)},
				Failed:              []saga.Reply[Order]{saga.On[Order, OrderRejected](nil)},
				Timeout:             w.timeout,
				Compensation:        saga.Send(func(o Order) CancelOrder { return CancelOrder{ID: o.ID} }),
				Compensated:         []saga.Reply[Order]{saga.On(func(o *Order, _ OrderCancelled) { o.Cancelled = true })},
				CompensationTimeout: 2 * w.timeout,
			},
			saga.Parallel[Order]{Steps: []saga.Step[Order]{
				{
					Name:                "charge",
					Command:             saga.Send(func(o Order) ChargePayment { return ChargePayment{ID: o.ID, Amount: o.Amount} }),
					Succeeded:           []saga.Reply[Order]{saga.On(func(o *Order, e PaymentCharged) { o.PaymentID = e.PaymentID })},
					Failed:              []saga.Reply[Order]{saga.On(func(o *Order, e PaymentDeclined) { o.Declined = e.Reason })},
					Timeout:             w.timeout,
					Compensation:        saga.Send(func(o Order) RefundPayment { return RefundPayment{ID: o.ID, PaymentID: o.PaymentID} }),
					Compensated:         []saga.Reply[Order]{saga.On(func(o *Order, _ PaymentRefunded) { o.Refunded = true })},
					CompensationFailed:  []saga.Reply[Order]{saga.On[Order, RefundFailed](nil)},
					CompensationTimeout: 2 * w.timeout,
				},
				{
					Name:                "reserve",
					Command:             saga.Send(func(o Order) ReserveStock { return ReserveStock{ID: o.ID, Items: o.Items} }),
					Succeeded:           []saga.Reply[Order]{saga.On(func(o *Order, e StockReserved) { o.Reservation = e.Reservation })},
					Failed:              []saga.Reply[Order]{saga.On[Order, OutOfStock](nil)},
					Timeout:             w.timeout,
					Compensation:        saga.Send(func(o Order) ReleaseStock { return ReleaseStock{ID: o.ID, Reservation: o.Reservation} }),
					Compensated:         []saga.Reply[Order]{saga.On(func(o *Order, _ StockReleased) { o.Released = true })},
					CompensationTimeout: 2 * w.timeout,
				},
			}},
			saga.Step[Order]{
				Name:           "ship",
				Command:        saga.Send(func(o Order) ScheduleShipping { return ScheduleShipping{ID: o.ID} }),
				Succeeded:      []saga.Reply[Order]{saga.On(func(o *Order, e ShippingScheduled) { o.Tracking = e.Tracking })},
				Failed:         []saga.Reply[Order]{saga.On[Order, ShippingFailed](nil)},
				Timeout:        w.timeout,
				NoCompensation: true,
			},
		},
	}
}

// Register registers the participants' handlers on bus: orders,
// payments, stock and shipping, each answering as [World.Behave] says and
// recording what it applied. opts go to every handler.
func (w *World) Register(bus *cqrs.Bus, opts ...framework.HandlerOption) {
	participant(w, bus, "create", false, func(c CreateOrder) string { return c.ID }, OrderCreated{}, OrderRejected{}, opts)
	participant(w, bus, "create", true, func(c CancelOrder) string { return c.ID }, OrderCancelled{}, none{}, opts)
	participant(w, bus, "charge", false, func(c ChargePayment) string { return c.ID }, PaymentCharged{}, PaymentDeclined{}, opts)
	participant(w, bus, "charge", true, func(c RefundPayment) string { return c.ID }, PaymentRefunded{}, RefundFailed{}, opts)
	participant(w, bus, "reserve", false, func(c ReserveStock) string { return c.ID }, StockReserved{}, OutOfStock{}, opts)
	participant(w, bus, "reserve", true, func(c ReleaseStock) string { return c.ID }, StockReleased{}, none{}, opts)
	participant(w, bus, "ship", false, func(c ScheduleShipping) string { return c.ID }, ShippingScheduled{}, ShippingFailed{}, opts)
}

// none stands for the failure event of a compensation that has none.
type none struct{}

// ErrParticipant is what a participant told to fail ([Error]) returns.
var ErrParticipant = errors.New("sagatest: participant failing as told")

// participant registers the handler of command C of step (its
// compensation when undo), answering with ok or bad (events with the id
// set by fill).
func participant[C, OK, Bad any](w *World, bus *cqrs.Bus, step string, undo bool, id func(C) string, ok OK, bad Bad, opts []framework.HandlerOption) {
	key := step
	kind := "do"
	if undo {
		key, kind = "undo:"+step, "undo"
	}
	cqrs.HandleCommand(bus, func(ctx context.Context, c C) error {
		oid := id(c)
		switch w.behaviour(key, oid) {
		case Silent:
			return nil
		case Error:
			return ErrParticipant
		case Decline:
			if _, no := any(bad).(none); no {
				return ErrParticipant
			}
			w.apply(ctx, oid, step, kind+"-failed")
			return cqrs.Publish(ctx, bus, fill(bad, oid))
		}
		w.apply(ctx, oid, step, kind)
		return cqrs.Publish(ctx, bus, fill(ok, oid))
	}, opts...)
}

// fill sets the id fields of event e.
func fill[E any](e E, id string) E {
	switch v := any(&e).(type) {
	case *OrderCreated:
		v.ID = id
	case *OrderRejected:
		v.ID = id
	case *OrderCancelled:
		v.ID = id
	case *PaymentCharged:
		v.ID, v.PaymentID = id, "pay-"+id
	case *PaymentDeclined:
		v.ID, v.Reason = id, "card declined"
	case *PaymentRefunded:
		v.ID = id
	case *RefundFailed:
		v.ID, v.Reason = id, "refund refused"
	case *StockReserved:
		v.ID, v.Reservation = id, "res-"+id
	case *OutOfStock:
		v.ID = id
	case *StockReleased:
		v.ID = id
	case *ShippingScheduled:
		v.ID, v.Tracking = id, "trk-"+id
	case *ShippingFailed:
		v.ID = id
	}
	return e
}

// apply records that the participant of step applied message ctx's
// command (kind "do" or "undo"): once per message id, as a participant
// that deduplicates would.
func (w *World) apply(ctx context.Context, id, step, kind string) {
	msgID := ""
	if msg := framework.Message(ctx); msg != nil {
		msgID = msg.UUID
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if msgID != "" && w.seen[msgID] {
		return
	}
	w.seen[msgID] = true
	k := id + "/" + step + "/" + kind
	w.applied[k] = append(w.applied[k], msgID)
	w.order[id] = append(w.order[id], kind+":"+step)
}

// Applied returns, for instance id, what the participants applied, in the
// order they applied it: "do:create", "do:charge", "undo:charge", ...
// ("do-failed:..." for a declined step).
func (w *World) Applied(id string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.order[id])
}

// Twice returns every step or compensation that a participant applied
// from more than one distinct message: what a saga must never cause.
func (w *World) Twice() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for k, ids := range w.applied {
		if len(ids) > 1 {
			out = append(out, fmt.Sprintf("%s (%d messages)", k, len(ids)))
		}
	}
	slices.Sort(out)
	return out
}

// Undone returns the compensations applied for instance id, in order.
func (w *World) Undone(id string) []string {
	var out []string
	for _, a := range w.Applied(id) {
		if s, ok := strings.CutPrefix(a, "undo:"); ok {
			out = append(out, s)
		}
	}
	return out
}
