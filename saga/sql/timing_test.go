package sql_test

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/millrace/millrace/saga"
)

type timedStore struct {
	saga.Store
	saves, saveNs, loads, loadNs atomic.Int64
}

func (s *timedStore) Save(ctx context.Context, in *saga.Instance, expected int64, out []saga.Outgoing, publish saga.Publish) error {
	t := time.Now()
	err := s.Store.Save(ctx, in, expected, out, publish)
	s.saves.Add(1)
	s.saveNs.Add(int64(time.Since(t)))
	return err
}

func (s *timedStore) Load(ctx context.Context, name, id string) (*saga.Instance, error) {
	t := time.Now()
	in, err := s.Store.Load(ctx, name, id)
	s.loads.Add(1)
	s.loadNs.Add(int64(time.Since(t)))
	return in, err
}
