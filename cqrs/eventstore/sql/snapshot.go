package sql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/millrace/millrace/cqrs/eventstore"
)

// SaveSnapshot implements [eventstore.SnapshotStore.SaveSnapshot]: one
// upsert into the snapshots table, keyed by stream and state version, that
// leaves a snapshot of a later stream version in place. TakenAt is the
// database's clock.
func (s *Store) SaveSnapshot(ctx context.Context, sn eventstore.Snapshot) error {
	if err := eventstore.CheckSnapshot(sn); err != nil {
		return err
	}
	c := s.start(ctx)
	defer c.cancel()
	payload := sn.Payload
	if payload == nil {
		payload = []byte{}
	}
	args := []any{sn.StreamID, sn.StateVersion, sn.Version, sn.Type, sn.ContentType, payload}
	if s.dialect == MySQL {
		v := sn.Version
		args = append(args, v, sn.Type, v, sn.ContentType, v, payload, v, v, v)
	}
	_, err := s.db.ExecContext(c.ctx, s.q.saveSnapshot, args...)
	return c.fail(fmt.Sprintf("save snapshot of %q", sn.StreamID), err)
}

// LoadSnapshot implements [eventstore.SnapshotStore.LoadSnapshot].
func (s *Store) LoadSnapshot(ctx context.Context, stream string, stateVersion int) (eventstore.Snapshot, bool, error) {
	if err := eventstore.CheckStream(stream); err != nil {
		return eventstore.Snapshot{}, false, err
	}
	c := s.start(ctx)
	defer c.cancel()
	sn := eventstore.Snapshot{StreamID: stream, StateVersion: stateVersion}
	var pgAt time.Time
	var myAt string
	var at any = &pgAt
	if s.dialect == MySQL {
		at = &myAt
	}
	err := s.db.QueryRowContext(c.ctx, s.q.loadSnapshot, stream, stateVersion).Scan(&sn.Version, &sn.Type, &sn.ContentType, &sn.Payload, at)
	if errors.Is(err, sql.ErrNoRows) {
		return eventstore.Snapshot{}, false, nil
	}
	if err == nil {
		if s.dialect == MySQL {
			sn.TakenAt, err = parseMySQLTime(myAt)
		} else {
			sn.TakenAt = pgAt.UTC()
		}
	}
	if err != nil {
		return eventstore.Snapshot{}, false, c.fail(fmt.Sprintf("load snapshot of %q", stream), err)
	}
	return sn, true, nil
}
