package sql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/millrace/millrace/cqrs/eventstore"
)

// mysqlRowsPerInsert bounds the rows of one INSERT (9 placeholders each),
// well below MySQL's 65,535 placeholders of a prepared statement.
const mysqlRowsPerInsert = 500

// appendMySQL runs the appends bs in tx: it locks the sequence row (every
// append of the store waits here for the one before to end), writes each
// append's stream row, checking its expected version, inserts the events
// of the appends whose version was the expected one, numbered after the
// sequence's value in the order of bs, and moves the sequence on. It
// returns, per append, what was stored or its ConflictError. An error
// (not a conflict) means tx must be rolled back; a refused append has
// written nothing, and tx is still usable.
func (s *Store) appendMySQL(ctx context.Context, tx *sql.Tx, bs []*batch) ([]*appended, []error, error) {
	var last int64
	var nowText string
	err := tx.QueryRowContext(ctx, s.q.lockSequence).Scan(&last, &nowText)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, fmt.Errorf("the sequence row of %ssequence is missing: run CreateSchema", s.prefix)
	}
	if err != nil {
		return nil, nil, err
	}
	now, err := parseMySQLTime(nowText)
	if err != nil {
		return nil, nil, err
	}
	done := make([]*appended, len(bs))
	refused := make([]error, len(bs))
	var args []any
	rows := 0
	seq := last
	flush := func() error {
		if rows == 0 {
			return nil
		}
		q := s.q.insertEvents + strings.Repeat(s.q.insertRow+",", rows-1) + s.q.insertRow
		_, err := tx.ExecContext(ctx, q, args...)
		args, rows = args[:0], 0
		return err
	}
	for i, b := range bs {
		version, err := s.writeStreamMySQL(ctx, tx, b)
		if err != nil {
			var ce *eventstore.ConflictError
			if errors.As(err, &ce) {
				refused[i] = err
				continue
			}
			return nil, nil, err
		}
		k := int64(len(b.ids))
		a := &appended{
			stream: b.stream, version: version, ids: b.ids,
			positions: make([]eventstore.Position, k), at: make([]time.Time, k),
		}
		first := version - k + 1
		for j := range k {
			seq++
			args = append(args, seq, b.stream, first+j, b.ids[j], b.types[j], b.cts[j], b.payloads[j], b.metadata[j], nowText)
			a.positions[j] = eventstore.Position{Seq: seq}
			a.at[j] = now
			if rows++; rows == mysqlRowsPerInsert {
				if err := flush(); err != nil {
					return nil, nil, err
				}
			}
		}
		done[i] = a
	}
	if err := flush(); err != nil {
		return nil, nil, err
	}
	if seq > last {
		if _, err := tx.ExecContext(ctx, s.q.setSequence, seq); err != nil {
			return nil, nil, err
		}
	}
	return done, refused, nil
}

// writeStreamMySQL writes b's stream row and returns the stream's new
// version, or a ConflictError if its version was not the expected one.
func (s *Store) writeStreamMySQL(ctx context.Context, tx *sql.Tx, b *batch) (int64, error) {
	k := int64(len(b.ids))
	switch b.mode {
	case modeNoStream:
		if _, err := tx.ExecContext(ctx, s.q.stream[modeNoStream], b.stream, k); err != nil {
			if isDuplicate(err) {
				return 0, s.conflict(ctx, tx, b.stream, b.expected)
			}
			return 0, err
		}
		return k, nil
	case modeExact:
		res, err := tx.ExecContext(ctx, s.q.stream[modeExact], k, b.stream, b.expected)
		if err != nil {
			return 0, err
		}
		if n, err := res.RowsAffected(); err != nil {
			return 0, err
		} else if n == 0 {
			return 0, s.conflict(ctx, tx, b.stream, b.expected)
		}
		return b.expected + k, nil
	}
	res, err := tx.ExecContext(ctx, s.q.stream[modeAny], b.stream, k, k)
	if err != nil {
		return 0, err
	}
	// 1 row affected: inserted with version k; 2: updated, and
	// LAST_INSERT_ID(version + k) returned the new version.
	n, err := res.RowsAffected()
	if err != nil || n != 2 {
		return k, err
	}
	return res.LastInsertId()
}

// isDuplicate reports a duplicate key error (ER_DUP_ENTRY), which rolls
// back the statement, not the transaction.
func isDuplicate(err error) bool {
	var my *mysql.MySQLError
	return errors.As(err, &my) && my.Number == 1062
}
