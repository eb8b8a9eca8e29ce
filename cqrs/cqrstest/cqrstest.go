// Package cqrstest tests cqrs handlers on the in-memory harness
// (framework/frameworktest): send a command, then assert, typed, on the
// events it caused.
//
//	func TestPlaceOrder(t *testing.T) {
//		synctest.Test(t, func(t *testing.T) {
//			h, bus := cqrstest.New(t)
//			orders.Register(bus)
//			h.Start()
//
//			flow := cqrstest.Send(h, bus, orders.PlaceOrder{ID: "o-1"})
//
//			placed := cqrstest.WaitEvents[orders.OrderPlaced](h, bus, flow, 1)
//			if placed[0].ID != "o-1" { t.Errorf(...) }
//		})
//	}
package cqrstest

import (
	"context"
	"fmt"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/cqrs"
	"github.com/millrace/millrace/framework"
	"github.com/millrace/millrace/framework/frameworktest"
)

// New returns a harness ([frameworktest.New], with opts) and a bus on its
// App. Register handlers on the bus, then call Start.
func New(t testing.TB, opts ...frameworktest.Option) (*frameworktest.Harness, *cqrs.Bus) {
	t.Helper()
	h := frameworktest.New(t, opts...)
	return h, cqrs.New(h.App)
}

// Send sends command c as a client outside the service would, starting a
// flow, and returns the flow's id: the command's correlation id (and its
// message id, unless opts set one), which everything the command causes
// carries. The test fails if sending fails.
func Send[C any](h *frameworktest.Harness, bus *cqrs.Bus, c C, opts ...framework.PublishOption) string {
	h.T().Helper()
	flow := watermill.NewUUID()
	opts = append(append([]framework.PublishOption{framework.WithID(flow)}, opts...), framework.WithMetadata(millrace.MetadataCorrelationID, flow))
	if err := cqrs.Send(context.Background(), bus, c, opts...); err != nil {
		h.T().Fatalf("cqrstest: send %s: %v", cqrs.Name[C](), err)
	}
	return flow
}

// Publish publishes event e as a client outside the service would, starting
// a flow, and returns the flow's id (see [Send]).
func Publish[E any](h *frameworktest.Harness, bus *cqrs.Bus, e E, opts ...framework.PublishOption) string {
	h.T().Helper()
	flow := watermill.NewUUID()
	opts = append(append([]framework.PublishOption{framework.WithID(flow)}, opts...), framework.WithMetadata(millrace.MetadataCorrelationID, flow))
	if err := cqrs.Publish(context.Background(), bus, e, opts...); err != nil {
		h.T().Fatalf("cqrstest: publish %s: %v", cqrs.Name[E](), err)
	}
	return flow
}

// Events returns the events of type E published so far in flow (whose
// correlation id is flow), decoded, in publish order. An empty flow
// matches every flow.
func Events[E any](h *frameworktest.Harness, bus *cqrs.Bus, flow string) []E {
	h.T().Helper()
	name := cqrs.Name[E]()
	var out []E
	for _, m := range h.Messages(cqrs.Topic[E](bus)) {
		if m.Metadata.Get(millrace.MetadataType) != name || (flow != "" && m.Metadata.Get(millrace.MetadataCorrelationID) != flow) {
			continue
		}
		out = append(out, decode[E](h, bus, m))
	}
	return out
}

// WaitEvents waits until at least n events of type E have been published in
// flow and returns all of them; the test fails after the harness timeout
// with a summary of what happened instead.
func WaitEvents[E any](h *frameworktest.Harness, bus *cqrs.Bus, flow string, n int) []E {
	h.T().Helper()
	var got []E
	h.WaitUntil(fmt.Sprintf("%d %s events were published in flow %s", n, cqrs.Name[E](), flow), func() bool {
		got = Events[E](h, bus, flow)
		return len(got) >= n
	})
	return got
}

func decode[T any](h *frameworktest.Harness, bus *cqrs.Bus, m *message.Message) T {
	h.T().Helper()
	var v T
	if err := bus.Decode(m, &v); err != nil {
		h.T().Fatalf("cqrstest: message %s does not decode into %s: %v", m.UUID, cqrs.Name[T](), err)
	}
	return v
}
