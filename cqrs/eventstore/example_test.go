package eventstore_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/cqrs/eventstore"
	"github.com/millrace/millrace/framework"
)

type OrderPlaced struct {
	ID    string `json:"id"`
	Total int    `json:"total_cents"`
}

func (OrderPlaced) MessageVersion() int { return 2 }

// The version of a stream decides which of two concurrent commands wins.
func ExampleStore_Append() {
	ctx := context.Background()
	store := eventstore.NewMemory()
	envelope := map[string]string{millrace.MetadataCorrelationID: "c-1"}
	placed, err := eventstore.NewEvent(framework.JSON{}, OrderPlaced{ID: "o-1", Total: 4200}, envelope)
	if err != nil {
		panic(err)
	}
	v, err := store.Append(ctx, "order-o-1", eventstore.NoStream, []eventstore.Event{placed})
	fmt.Println(v, err)

	again, _ := eventstore.NewEvent(framework.JSON{}, OrderPlaced{ID: "o-1", Total: 1}, envelope)
	_, err = store.Append(ctx, "order-o-1", eventstore.NoStream, []eventstore.Event{again})
	var conflict *eventstore.ConflictError
	fmt.Println(errors.As(err, &conflict), conflict.Actual)
	fmt.Println(err)
	// Output:
	// 1 <nil>
	// true 1
	// eventstore: stream "order-o-1": expected no stream, actual version 1
}

// A stream read up to a version is the aggregate's state as of then.
func ExampleStore_ReadStream() {
	ctx := context.Background()
	store := eventstore.NewMemory()
	for _, typ := range []string{"Placed", "Paid", "Shipped"} {
		if _, err := store.Append(ctx, "order-o-1", eventstore.Any, []eventstore.Event{{Type: typ}}); err != nil {
			panic(err)
		}
	}
	events, err := store.ReadStream(ctx, "order-o-1", 1, eventstore.ReadOptions{To: 2})
	if err != nil {
		panic(err)
	}
	for _, e := range events {
		fmt.Println(e.Version, e.Type)
	}
	// Output:
	// 1 Placed
	// 2 Paid
}

// A follower of the global order goes on from the position it got to.
func ExampleStore_ReadAll() {
	ctx := context.Background()
	store := eventstore.NewMemory()
	for _, stream := range []string{"order-1", "order-2", "order-1"} {
		if _, err := store.Append(ctx, stream, eventstore.Any, []eventstore.Event{{Type: "Touched"}}); err != nil {
			panic(err)
		}
	}
	checkpoint := eventstore.Start
	for {
		events, err := store.ReadAll(ctx, checkpoint, 2)
		if err != nil {
			panic(err)
		}
		if len(events) == 0 {
			break // caught up
		}
		for _, e := range events {
			fmt.Println(e.Position, e.StreamID, e.Version)
			checkpoint = e.Position
		}
	}
	// Output:
	// 1 order-1 1
	// 2 order-2 1
	// 3 order-1 2
}

type OrderPlacedV1 struct {
	ID    string  `json:"id"`
	Total float64 `json:"total"`
}

func (OrderPlacedV1) MessageType() string { return "OrderPlaced" }
func (OrderPlacedV1) MessageVersion() int { return 1 }

// Events stored as OrderPlaced.v1 are read as OrderPlaced.v2.
func ExampleUpcast() {
	ctx := context.Background()
	upcasters := eventstore.NewUpcasters()
	err := eventstore.Upcast(upcasters, framework.JSON{}, func(old OrderPlacedV1) (OrderPlaced, error) {
		return OrderPlaced{ID: old.ID, Total: int(old.Total * 100)}, nil
	})
	if err != nil {
		panic(err)
	}
	store := eventstore.NewMemory(eventstore.UpcastWith(upcasters))
	old, _ := eventstore.NewEvent(framework.JSON{}, OrderPlacedV1{ID: "o-1", Total: 42.5}, nil)
	if _, err := store.Append(ctx, "order-o-1", eventstore.NoStream, []eventstore.Event{old}); err != nil {
		panic(err)
	}
	events, _ := store.ReadStream(ctx, "order-o-1", 1, eventstore.ReadOptions{})
	var placed OrderPlaced
	if err := eventstore.Decode(framework.JSON{}, events[0], &placed); err != nil {
		panic(err)
	}
	fmt.Println(events[0].Type, placed.Total)
	// Output:
	// OrderPlaced.v2 4250
}

// Snapshots every 100 events, every 20 for carts.
func ExampleSnapshotPolicy_Due() {
	policy := eventstore.SnapshotPolicy{Every: 100, PerType: map[string]int{"Cart": 20}}
	fmt.Println(policy.Due("Order", 95, 101), policy.Due("Order", 101, 150), policy.Due("Cart", 19, 20))
	// Output:
	// true false true
}

// A snapshot of another state version is not found: the state is rebuilt
// from the events instead.
func ExampleSnapshotStore() {
	ctx := context.Background()
	var snapshots eventstore.SnapshotStore = eventstore.NewMemory()
	err := snapshots.SaveSnapshot(ctx, eventstore.Snapshot{
		StreamID: "order-o-1", Version: 100, StateVersion: 1,
		Type: "Order", ContentType: "application/json", Payload: []byte(`{"total":42.5}`),
	})
	if err != nil {
		panic(err)
	}
	_, found, _ := snapshots.LoadSnapshot(ctx, "order-o-1", 2)
	fmt.Println(found)
	// Output:
	// false
}
