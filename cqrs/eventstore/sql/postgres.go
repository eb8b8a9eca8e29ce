package sql

import (
	"context"
	"fmt"
	"time"

	"github.com/millrace/millrace/cqrs/eventstore"
)

// appendPostgres runs b's append statement on q: the stream's row is
// inserted or updated (its version checked), then the events inserted, all
// in one statement, which inserts nothing if the stream's row was not
// written. So a refused append stores nothing and leaves q's transaction
// usable.
func (s *Store) appendPostgres(ctx context.Context, q querier, b *batch) (*appended, error) {
	k := int64(len(b.ids))
	args := []any{b.stream, k, b.ids, b.types, b.cts, b.payloads, b.metadata}
	if b.mode == modeExact {
		args = append(args, b.expected)
	}
	rows, err := q.QueryContext(ctx, s.q.append[b.mode], args...)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	type row struct {
		tx      uint64
		seq     int64
		version int64
		at      time.Time
	}
	got := make([]row, 0, k)
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.tx, &r.seq, &r.version, &r.at); err != nil {
			return nil, err
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(got) == 0 {
		return nil, s.conflict(ctx, q, b.stream, b.expected)
	}
	if int64(len(got)) != k {
		return nil, fmt.Errorf("stored %d of %d events", len(got), k)
	}
	// The versions are first..first+k-1, whatever order the rows came in.
	first := got[0].version
	for _, r := range got {
		first = min(first, r.version)
	}
	done := &appended{
		stream: b.stream, version: first + k - 1, ids: b.ids,
		positions: make([]eventstore.Position, k), at: make([]time.Time, k),
	}
	for _, r := range got {
		i := r.version - first
		if i < 0 || i >= k {
			return nil, fmt.Errorf("stored version %d outside %d..%d", r.version, first, first+k-1)
		}
		done.positions[i] = eventstore.Position{Tx: r.tx, Seq: r.seq}
		done.at[i] = r.at.UTC()
	}
	return done, nil
}
