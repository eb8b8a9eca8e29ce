package conformance

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/millrace/millrace/cqrs"
)

// The programming model's scenarios: commands reach their one handler,
// events reach every handler, requests get their own replies, on every
// transport. Each run routes its types to fresh topics, as the suite's
// other scenarios use fresh topics.

type reserveStock struct {
	OrderID string `json:"order_id"`
	Items   int    `json:"items"`
}

type stockReserved struct {
	OrderID string `json:"order_id"`
}

// routes sends the scenario's message types to fresh topics.
func routes() []cqrs.Option {
	return []cqrs.Option{
		cqrs.Route[placeOrder](fresh("cqrs.place")),
		cqrs.Route[orderPlaced](fresh("cqrs.placed")),
		cqrs.Route[reserveStock](fresh("cqrs.reserve")),
	}
}

// bus returns a bus on svc with the scenario's routes.
func (svc *service) bus(opts []cqrs.Option) *cqrs.Bus {
	return cqrs.New(svc.App, opts...)
}

func (s *suite) commandToItsSingleHandler(t *testing.T) {
	const n = 20
	r := routes()
	front := s.newService(t, fresh("front"))
	frontBus := front.bus(r)
	front.Start()
	// Sent before the handler's service ever started: they wait for it.
	for i := range n {
		if err := cqrs.Send(context.Background(), frontBus, placeOrder{OrderID: strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	name := fresh("orders")
	var mu sync.Mutex
	handled := map[string]int{}
	var instances []*service
	for range 2 {
		svc := s.newService(t, name)
		cqrs.HandleCommand(svc.bus(r), func(_ context.Context, c placeOrder) error {
			mu.Lock()
			handled[c.OrderID]++
			mu.Unlock()
			return nil
		})
		svc.Start()
		instances = append(instances, svc)
	}
	waitUntil(t, fmt.Sprintf("all %d commands to be handled", n), func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled) == n
	})
	var total int
	for _, svc := range instances {
		total += len(svc.Handled(cqrs.Name[placeOrder]()))
	}
	if total >= 2*n {
		t.Errorf("%d deliveries of %d commands: each should reach one handler instance, not every one", total, n)
	}
}

func (s *suite) eventFanOut(t *testing.T) {
	const n = 10
	r := routes()
	var billing, shipping, audit atomic.Int64
	shop := s.newService(t, fresh("shop"))
	shopBus := shop.bus(r)
	cqrs.HandleEvent(shopBus, "bill", func(context.Context, orderPlaced) error { billing.Add(1); return nil })
	cqrs.HandleEvent(shopBus, "ship", func(context.Context, orderPlaced) error { shipping.Add(1); return nil })
	shop.Start()
	other := s.newService(t, fresh("audit"))
	cqrs.HandleEvent(other.bus(r), "log", func(context.Context, orderPlaced) error { audit.Add(1); return nil })
	other.Start()
	for i := range n {
		if err := cqrs.Publish(context.Background(), shopBus, orderPlaced{OrderID: strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, fmt.Sprintf("every handler to get all %d events", n), func() bool {
		return billing.Load() >= n && shipping.Load() >= n && audit.Load() >= n
	})
}

func (s *suite) requestReply(t *testing.T) {
	r := routes()
	stock := s.newService(t, fresh("stock"))
	cqrs.HandleCommandWithReply(stock.bus(r), func(_ context.Context, c reserveStock) (stockReserved, error) {
		if c.Items > 100 {
			return stockReserved{}, errors.New("not enough stock")
		}
		return stockReserved{OrderID: c.OrderID}, nil
	})
	stock.Start()
	name := fresh("front")
	var buses []*cqrs.Bus
	for range 2 {
		svc := s.newService(t, name)
		buses = append(buses, svc.bus(r))
		svc.Start()
	}
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			id := strconv.Itoa(i)
			res, err := cqrs.Request[stockReserved](ctx, buses[i%2], reserveStock{OrderID: id, Items: 1})
			if err == nil && res.OrderID != id {
				err = fmt.Errorf("request %s got the reply to %s", id, res.OrderID)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	_, err := cqrs.Request[stockReserved](ctx, buses[0], reserveStock{OrderID: "big", Items: 1000})
	var remote *cqrs.RemoteError
	if !errors.As(err, &remote) || remote.Message != "not enough stock" {
		t.Errorf("request error = %v, want the handler's error", err)
	}
	for i, b := range buses {
		if late := b.Stats().LateReplies; late != 0 {
			t.Errorf("instance %d: %d late replies", i, late)
		}
	}
}
