package aggregate_test

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/cqrs/aggregate"
	"github.com/millrace/millrace/cqrs/cqrstest"
	"github.com/millrace/millrace/cqrs/eventstore"
)

type OpenAccount struct {
	Account string
	Owner   string
}

type Deposit struct {
	Account string
	Amount  int
}

func TestHandleCommand_LoadsDecidesAndSavesWithTheCommandsEnvelope(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, bus := cqrstest.New(t)
		s := eventstore.NewMemory()
		r := newRepo(t, s)
		aggregate.HandleCommand(bus, r, func(c OpenAccount) string { return c.Account },
			func(_ context.Context, a *Account, c OpenAccount) error { return a.Open(c.Owner) })
		aggregate.HandleCommand(bus, r, func(c Deposit) string { return c.Account },
			func(_ context.Context, a *Account, c Deposit) error {
				err := a.Deposit(c.Amount)
				if err == errNotPositiveSum {
					return millrace.Permanent(err)
				}
				return err
			})
		h.Start()
		ctx := context.Background()

		cqrstest.Send(h, bus, OpenAccount{Account: "a-1", Owner: "ann"})
		synctest.Wait()
		flow := cqrstest.Send(h, bus, Deposit{Account: "a-1", Amount: 25})
		h.WaitUntil("the deposit is saved", func() bool {
			a, err := r.Load(ctx, "a-1")
			return err == nil && a.Balance == 25
		})
		events, err := s.ReadStream(ctx, "account-a-1", 2, eventstore.ReadOptions{})
		must(t, err)
		md := events[0].Metadata
		if md[millrace.MetadataCorrelationID] != flow || md[millrace.MetadataCausationID] != flow ||
			md[millrace.MetadataPublishedBy] != h.App.Config().Service.Name || md[millrace.MetadataEntityID] != "a-1" {
			t.Errorf("deposit's metadata %v; want correlation and causation %s, published_by the service, entity_id a-1", md, flow)
		}

		// A refused command saves nothing, and its permanent error poisons it.
		cqrstest.Send(h, bus, Deposit{Account: "a-1", Amount: -5})
		h.WaitPoisoned(cqrsName[Deposit](), 1)
		a, err := r.Load(ctx, "a-1")
		if err != nil || a.Version() != 2 {
			t.Errorf("after the refused deposit: %+v, %v; want version 2", a, err)
		}
	})
}
