package kafka_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/millrace/millrace/framework"
)

type step struct {
	Key string `json:"key"`
	Seq int    `json:"seq"`
}

// An App on Kafka handles the messages of different partitions at once, as
// Watermill's router does, and those of one key (one partition) one at a
// time, in publish order, with the default concurrency of 1; MaxInFlight
// caps how many at once.
func TestApp_HandlesPartitionsConcurrentlyAndKeysInOrder(t *testing.T) {
	tests := []struct {
		maxInFlight int
		least, most int32 // messages handled at once
	}{
		{0, 2, 4}, // one per partition
		{1, 1, 1},
		{3, 2, 3},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("max_in_flight=%d", tt.maxInFlight), func(t *testing.T) {
			testPartitionsAndKeys(t, tt.maxInFlight, tt.least, tt.most)
		})
	}
}

func testPartitionsAndKeys(t *testing.T, maxInFlight int, least, most int32) {
	const partitions, keys, perKey = 4, 8, 40
	tr := openTransport(t, testConfig(newCluster(t, partitions)))
	reg, err := framework.Transports()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := framework.Parse(nil, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	app, err := framework.New(cfg, testLogger(), tr)
	if err != nil {
		t.Fatal(err)
	}

	var (
		mu                sync.Mutex
		seen              = map[string][]int{}
		inFlight, maxSeen atomic.Int32
		handled           atomic.Int32
		done              = make(chan struct{})
	)
	framework.Handle(app, "steps", "steps", func(_ context.Context, s step) error {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := maxSeen.Load()
			if n <= m || maxSeen.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(2 * time.Millisecond) // long enough for others to overlap
		mu.Lock()
		seen[s.Key] = append(seen[s.Key], s.Seq)
		mu.Unlock()
		if handled.Add(1) == keys*perKey {
			close(done)
		}
		return nil
	}, framework.MaxInFlight(maxInFlight))

	ctx := context.Background()
	for seq := range perKey {
		for k := range keys {
			key := fmt.Sprintf("order-%d", k)
			if err := app.Publish(ctx, "steps", step{Key: key, Seq: seq}, framework.WithKey(key)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := app.Stop(ctx); err != nil {
			t.Error(err)
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("handled %d of %d messages", handled.Load(), keys*perKey)
	}

	mu.Lock()
	defer mu.Unlock()
	for key, seqs := range seen {
		for i, seq := range seqs {
			if seq != i {
				t.Fatalf("%s: handled in order %v, want 0..%d", key, seqs, perKey-1)
			}
		}
	}
	if m := maxSeen.Load(); m < least || m > most {
		t.Errorf("at most %d messages were handled at once, want from %d to %d", m, least, most)
	}
}
