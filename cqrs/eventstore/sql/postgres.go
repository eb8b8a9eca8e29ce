package sql

import (
	"context"
	"fmt"
	"time"

	"github.com/millrace/millrace/cqrs/eventstore"
)

// appendPostgres runs the appends bs on q in one statement: each append's
// stream row is inserted or updated (its version checked), then the events
// of the appends whose row was written are inserted. An append whose row
// was not written stores nothing and gets a ConflictError; q's transaction
// stays usable. Several appends in one statement must be to distinct
// streams. An error means nothing of bs was stored, if q is the database
// (the statement is its own transaction), or that q's transaction must be
// rolled back.
func (s *Store) appendPostgres(ctx context.Context, q querier, bs []*batch) ([]*appended, []error, error) {
	var query string
	var args []any
	if len(bs) == 1 {
		b := bs[0]
		query = s.q.append[b.mode]
		args = []any{b.stream, int64(len(b.ids)), b.ids, b.types, b.cts, b.payloads, b.metadata}
		if b.mode == modeExact {
			args = append(args, b.expected)
		}
	} else {
		query, args = s.q.appendMany, manyArgs(bs)
	}
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = rows.Close() }()

	type row struct {
		tx      uint64
		seq     int64
		version int64
		at      time.Time
	}
	byStream := make(map[string][]row, len(bs))
	for rows.Next() {
		var r row
		var stream string
		if err := rows.Scan(&r.tx, &r.seq, &stream, &r.version, &r.at); err != nil {
			return nil, nil, err
		}
		byStream[stream] = append(byStream[stream], r)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	_ = rows.Close()

	done := make([]*appended, len(bs))
	refused := make([]error, len(bs))
	for i, b := range bs {
		got, k := byStream[b.stream], int64(len(b.ids))
		if len(got) == 0 {
			refused[i] = s.conflict(ctx, q, b.stream, b.expected)
			continue
		}
		if int64(len(got)) != k {
			return nil, nil, fmt.Errorf("stored %d of %d events of the append to %q", len(got), k, b.stream)
		}
		// The versions are first..first+k-1, whatever order the rows came
		// in.
		first := got[0].version
		for _, r := range got {
			first = min(first, r.version)
		}
		a := &appended{
			stream: b.stream, version: first + k - 1, ids: b.ids,
			positions: make([]eventstore.Position, k), at: make([]time.Time, k),
		}
		for _, r := range got {
			j := r.version - first
			if j < 0 || j >= k {
				return nil, nil, fmt.Errorf("stored version %d of %q outside %d..%d", r.version, b.stream, first, first+k-1)
			}
			a.positions[j] = eventstore.Position{Tx: r.tx, Seq: r.seq}
			a.at[j] = r.at.UTC()
		}
		done[i] = a
	}
	return done, refused, nil
}

// manyArgs returns the arguments of appendMany for bs: per append its
// stream, expected version and event count; per event the append it
// belongs to, its place in it (both from 1) and its columns.
func manyArgs(bs []*batch) []any {
	n := 0
	for _, b := range bs {
		n += len(b.ids)
	}
	var (
		streams  = make([]string, len(bs))
		expected = make([]int64, len(bs))
		counts   = make([]int64, len(bs))
		calls    = make([]int64, 0, n)
		places   = make([]int64, 0, n)
		ids      = make([]string, 0, n)
		types    = make([]string, 0, n)
		cts      = make([]string, 0, n)
		payloads = make([][]byte, 0, n)
		metadata = make([]string, 0, n)
	)
	for i, b := range bs {
		streams[i], expected[i], counts[i] = b.stream, b.expected, int64(len(b.ids))
		for j := range b.ids {
			calls = append(calls, int64(i+1))
			places = append(places, int64(j+1))
		}
		ids = append(ids, b.ids...)
		types = append(types, b.types...)
		cts = append(cts, b.cts...)
		payloads = append(payloads, b.payloads...)
		metadata = append(metadata, b.metadata...)
	}
	return []any{streams, expected, counts, calls, places, ids, types, cts, payloads, metadata}
}
