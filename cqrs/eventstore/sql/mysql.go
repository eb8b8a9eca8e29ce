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

// appendMySQL runs b's append in tx: it locks the sequence row (every
// append of the store waits here for the one before to end), writes the
// stream's row, checking the expected version, inserts the events numbered
// after the sequence's value, and moves the sequence on. A refused append
// has written nothing, and tx is still usable.
func (s *Store) appendMySQL(ctx context.Context, tx *sql.Tx, b *batch) (*appended, error) {
	var last int64
	var nowText string
	err := tx.QueryRowContext(ctx, s.q.lockSequence).Scan(&last, &nowText)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("the sequence row of %ssequence is missing: run CreateSchema", s.prefix)
	}
	if err != nil {
		return nil, err
	}
	now, err := parseMySQLTime(nowText)
	if err != nil {
		return nil, err
	}

	k := int64(len(b.ids))
	var version int64
	switch b.mode {
	case modeNoStream:
		if _, err := tx.ExecContext(ctx, s.q.stream[modeNoStream], b.stream, k); err != nil {
			if isDuplicate(err) {
				return nil, s.conflict(ctx, tx, b.stream, b.expected)
			}
			return nil, err
		}
		version = k
	case modeExact:
		res, err := tx.ExecContext(ctx, s.q.stream[modeExact], k, b.stream, b.expected)
		if err != nil {
			return nil, err
		}
		if n, err := res.RowsAffected(); err != nil {
			return nil, err
		} else if n == 0 {
			return nil, s.conflict(ctx, tx, b.stream, b.expected)
		}
		version = b.expected + k
	default:
		res, err := tx.ExecContext(ctx, s.q.stream[modeAny], b.stream, k, k)
		if err != nil {
			return nil, err
		}
		// 1 row affected: inserted with version k; 2: updated, and
		// LAST_INSERT_ID(version + k) returned the new version.
		n, err := res.RowsAffected()
		if err != nil {
			return nil, err
		}
		version = k
		if n == 2 {
			if version, err = res.LastInsertId(); err != nil {
				return nil, err
			}
		}
	}

	done := &appended{
		stream: b.stream, version: version, ids: b.ids,
		positions: make([]eventstore.Position, k), at: make([]time.Time, k),
	}
	first := version - k + 1
	for start := int64(0); start < k; start += mysqlRowsPerInsert {
		end := min(start+mysqlRowsPerInsert, k)
		var q strings.Builder
		q.WriteString(s.q.insertEvents)
		args := make([]any, 0, 9*(end-start))
		for i := start; i < end; i++ {
			if i > start {
				q.WriteByte(',')
			}
			q.WriteString(s.q.insertRow)
			args = append(args, last+1+i, b.stream, first+i, b.ids[i], b.types[i], b.cts[i], b.payloads[i], b.metadata[i], nowText)
			done.positions[i] = eventstore.Position{Seq: last + 1 + i}
			done.at[i] = now
		}
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			return nil, err
		}
	}
	if _, err := tx.ExecContext(ctx, s.q.setSequence, last+k); err != nil {
		return nil, err
	}
	return done, nil
}

// isDuplicate reports a duplicate key error (ER_DUP_ENTRY), which rolls
// back the statement, not the transaction.
func isDuplicate(err error) bool {
	var my *mysql.MySQLError
	return errors.As(err, &my) && my.Number == 1062
}
