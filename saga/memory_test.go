package saga_test

import (
	"context"
	"sync"
	"testing"

	"github.com/millrace/millrace/saga"
	"github.com/millrace/millrace/saga/storetest"
)

func TestMemoryStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Subject {
		var mu sync.Mutex
		sent := map[string][]string{}
		store := &recordingStore{MemoryStore: saga.NewMemoryStore(), record: func(o []saga.Outgoing) {
			mu.Lock()
			defer mu.Unlock()
			for _, m := range o {
				sent[m.Topic] = append(sent[m.Topic], m.Msg.UUID)
			}
		}}
		return storetest.Subject{Store: store, Sent: func(topic string) []string {
			mu.Lock()
			defer mu.Unlock()
			return append([]string(nil), sent[topic]...)
		}}
	})
}

// recordingStore records what the memory store publishes.
type recordingStore struct {
	*saga.MemoryStore
	record func([]saga.Outgoing)
}

func (s *recordingStore) Save(ctx context.Context, in *saga.Instance, expected int64, out []saga.Outgoing, publish saga.Publish) error {
	return s.MemoryStore.Save(ctx, in, expected, out, func(ctx context.Context, o []saga.Outgoing) error {
		s.record(o)
		return publish(ctx, o)
	})
}
