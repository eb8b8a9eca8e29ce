package sql

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/millrace/millrace/cqrs/eventstore"
)

// query runs a read whose rows are events (the columns of readStream and
// readAll) and returns them, stopping before the first event recorded
// after opts.Until, if set.
func (s *Store) query(ctx context.Context, q querier, opts eventstore.ReadOptions, query string, args ...any) ([]eventstore.Event, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	var (
		events []eventstore.Event
		tx     uint64
		md     []byte
		pgAt   time.Time
		myAt   string
		at     any = &pgAt
	)
	if s.dialect == MySQL {
		at = &myAt
	}
	for rows.Next() {
		var e eventstore.Event
		if err := rows.Scan(&tx, &e.Position.Seq, &e.StreamID, &e.Version, &e.ID, &e.Type, &e.ContentType, &e.Payload, &md, at); err != nil {
			return nil, err
		}
		e.Position.Tx = tx
		if e.Metadata, err = decodeMetadata(md); err != nil {
			return nil, fmt.Errorf("event %s: %w", e.ID, err)
		}
		if s.dialect == MySQL {
			if e.RecordedAt, err = parseMySQLTime(myAt); err != nil {
				return nil, fmt.Errorf("event %s: %w", e.ID, err)
			}
		} else {
			e.RecordedAt = pgAt.UTC()
		}
		if !opts.Until.IsZero() && e.RecordedAt.After(opts.Until) {
			break
		}
		events = append(events, e)
	}
	return events, rows.Err()
}

// readStream reads stream's events from version from, bounded by opts.
//
// On MySQL a read view can be torn: InnoDB copies the set of running
// transactions without stopping commits, so a read can see an append that
// waited for another one's stream lock without seeing that other append,
// which had committed too. Versions without gaps are a committed prefix; at
// a gap ReadStream waits for the stream's row to be free (a shared lock),
// after which every append up to its version has ended and is visible to
// a new read, and reads again up to that version.
func (s *Store) readStream(ctx context.Context, stream string, from int64, opts eventstore.ReadOptions) ([]eventstore.Event, error) {
	to, limit := opts.To, int64(opts.Limit)
	if to <= 0 {
		to = math.MaxInt64
	}
	if limit <= 0 {
		limit = math.MaxInt64
	}
	events, err := s.query(ctx, s.db, opts, s.q.readStream, stream, from, to, limit)
	if err != nil || s.dialect != MySQL || gapless(events, from, version) == len(events) {
		return events, err
	}
	var settled int64
	if err := s.db.QueryRowContext(ctx, s.q.shareStream, stream).Scan(&settled); err != nil {
		return nil, fmt.Errorf("wait for the stream's appends: %w", err)
	}
	events, err = s.query(ctx, s.db, opts, s.q.readStream, stream, from, min(to, settled), limit)
	if err != nil {
		return nil, err
	}
	if n := gapless(events, from, version); n != len(events) {
		return nil, fmt.Errorf("version %d missing, version %d stored", from+int64(n), events[n].Version)
	}
	return events, nil
}

// readAllMySQL reads up to limit events after position after. The
// sequence numbers of committed appends have no gaps (a rolled back append
// never wrote the sequence), so events whose numbers follow on from after
// without a gap are a committed prefix, and ReadAll returns them. A gap
// right after after is either an append still running or a torn read view
// (see readStream): ReadAll then waits for the sequence's row to be free
// (a shared lock), after which every append numbered up to its value has
// ended, and reads again up to that value.
func (s *Store) readAllMySQL(ctx context.Context, after eventstore.Position, limit int) ([]eventstore.Event, error) {
	if after.Tx != 0 {
		return nil, nil // after every event of this store, whose Tx is 0
	}
	from := max(after.Seq, 0)
	events, err := s.query(ctx, s.db, eventstore.ReadOptions{}, s.q.readAll, from, limit)
	if err != nil {
		return nil, err
	}
	if n := gapless(events, from+1, seq); n > 0 || len(events) == 0 {
		return events[:n], nil
	}
	var settled int64
	if err := s.db.QueryRowContext(ctx, s.q.shareSequence).Scan(&settled); err != nil {
		return nil, fmt.Errorf("wait for the running append: %w", err)
	}
	events, err = s.query(ctx, s.db, eventstore.ReadOptions{}, s.q.readAllUpTo, from, settled, limit)
	if err != nil {
		return nil, err
	}
	if n := gapless(events, from+1, seq); n != len(events) {
		return nil, fmt.Errorf("event %d missing, event %d stored", from+1+int64(n), events[n].Position.Seq)
	}
	return events, nil
}

func version(e *eventstore.Event) int64 { return e.Version }
func seq(e *eventstore.Event) int64     { return e.Position.Seq }

// gapless returns how many of events, from the first, are numbered next,
// next+1, ... by num.
func gapless(events []eventstore.Event, next int64, num func(*eventstore.Event) int64) int {
	for i := range events {
		if num(&events[i]) != next+int64(i) {
			return i
		}
	}
	return len(events)
}

// encodeMetadata returns md as a JSON object ("{}" for none).
func encodeMetadata(md map[string]string) string {
	if len(md) == 0 {
		return "{}"
	}
	b, err := json.Marshal(md)
	if err != nil {
		// Unreachable: a map of strings always encodes.
		panic(err)
	}
	return string(b)
}

// decodeMetadata reads what encodeMetadata wrote; nil for an empty object.
func decodeMetadata(b []byte) (map[string]string, error) {
	if len(b) == 0 || string(b) == "{}" {
		return nil, nil
	}
	var md map[string]string
	if err := json.Unmarshal(b, &md); err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	if len(md) == 0 {
		return nil, nil
	}
	return md, nil
}

// parseMySQLTime reads a DATETIME(6) formatted with mysqlTime, in UTC.
func parseMySQLTime(s string) (time.Time, error) {
	t, err := time.ParseInLocation("2006-01-02 15:04:05.999999", s, time.UTC)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: %w", s, err)
	}
	return t, nil
}
