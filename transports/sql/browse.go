package sql

import (
	"context"
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

// Browse returns the messages of topic's table, oldest first, in the order
// subscribers receive them, without consuming them: no consumer group's
// offset changes and nothing is locked. Every message the table holds is
// returned, whether groups acked it or not (the transport never deletes
// rows); messages given to Delay are not among them until they are due,
// and then only in the group's private topic. A row without uuid gets the
// id a subscriber would give it (see the package documentation).
//
// Browse is how operator tools read a dead-letter topic (it implements
// dlq.Browser). A topic whose table does not exist has no messages. ctx
// and query_timeout bound the call. After Close, Browse fails with an
// error wrapping [transports.ErrClosed].
func (t *Transport) Browse(ctx context.Context, topic string) ([]*message.Message, error) {
	if t.subs.Closed() {
		return nil, errClosed
	}
	if err := checkTopic(topic); err != nil {
		return nil, fmt.Errorf("%s: browse: %w", t.dialect, err)
	}
	q := `SELECT "offset", uuid, payload, metadata FROM ` + t.schema.messagesTable(topic) +
		` ORDER BY transaction_id, "offset"`
	if t.dialect == mysqlDialect {
		q = "SELECT `offset`, uuid, payload, metadata FROM " + t.schema.messagesTable(topic) + " ORDER BY `offset`"
	}
	ctx, cancel := t.query.start(ctx)
	defer cancel()
	rows, err := t.db.QueryContext(ctx, q)
	if err != nil {
		if isUndefinedTable(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("%s: browse %s: %w", t.dialect, topic, t.query.check(ctx, "query", err))
	}
	defer func() { _ = rows.Close() }()
	var out []*message.Message
	for rows.Next() {
		var (
			offset                  int64
			uuid, payload, metadata []byte
		)
		if err := rows.Scan(&offset, &uuid, &payload, &metadata); err != nil {
			return nil, fmt.Errorf("%s: browse %s: %w", t.dialect, topic, err)
		}
		out = append(out, decodeRow(t.dialect, topic, offset, uuid, payload, metadata))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: browse %s: %w", t.dialect, topic, t.query.check(ctx, "query", err))
	}
	return out, nil
}

// isUndefinedTable reports whether err says a table does not exist.
func isUndefinedTable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "42P01" // undefined_table
	}
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) {
		return myErr.Number == 1146 // ER_NO_SUCH_TABLE
	}
	return false
}
