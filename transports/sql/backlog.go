package sql

import (
	"context"
	stdsql "database/sql"
	"errors"
	"fmt"

	"github.com/millrace/millrace/transports"
)

var (
	_ transports.Backlogger    = (*Transport)(nil)
	_ transports.HealthChecker = (*Transport)(nil)
)

// Backlog returns how many rows of topic consumer group group has still to
// read: those after the group's acked offset in topic's table and in the
// group's private topic that Delay feeds (delayed messages once due; those
// not yet due are not counted). A group with no offset yet counts as it
// would start: every row with initial_offset oldest, none with newest.
// With group "" it returns how many rows topic's table holds (the size of
// a poison topic). A topic whose table does not exist has none. Rows of
// transactions not yet committed are not counted; on PostgreSQL rows that
// wait behind an older open transaction are. It counts rows, so its cost
// grows with the backlog. ctx and query_timeout bound it; after Close it
// fails with an error wrapping [transports.ErrClosed]
// ([transports.Backlogger]).
func (t *Transport) Backlog(ctx context.Context, topic, group string) (int64, error) {
	if t.subs.Closed() {
		return 0, errClosed
	}
	if err := checkTopic(topic); err != nil {
		return 0, fmt.Errorf("%s: backlog: %w", t.dialect, err)
	}
	ctx, cancel := t.query.start(ctx)
	defer cancel()
	if group == "" {
		n, err := t.countRows(ctx, topic, nil)
		if err != nil {
			return 0, fmt.Errorf("%s: backlog of %s: %w", t.dialect, topic, t.query.check(ctx, "query", err))
		}
		return n, nil
	}
	if !validName.MatchString(group) {
		return 0, fmt.Errorf("%s: backlog: consumer group %q: only letters, digits and - $ : . _ are allowed", t.dialect, group)
	}
	var total int64
	for _, tp := range []string{topic, groupTopic(topic, group)} {
		n, err := t.behind(ctx, tp, group, tp == topic)
		if err != nil {
			return 0, fmt.Errorf("%s: backlog of group %q on %s: %w", t.dialect, group, tp, t.query.check(ctx, "query", err))
		}
		total += n
	}
	return total, nil
}

// behind counts the rows of topic after group's offset. A group without
// an offset starts at the start, or, if initial applies and
// initial_offset is newest, at the end.
func (t *Transport) behind(ctx context.Context, topic, group string, initial bool) (int64, error) {
	offsets := t.schema.offsetsTable(topic)
	var after []any
	if t.dialect == postgres {
		var (
			txid   stdsql.NullString // xid8, as text
			offset int64
		)
		err := t.db.QueryRowContext(ctx, "SELECT last_processed_transaction_id::text, offset_acked FROM "+offsets+
			" WHERE consumer_group = $1", group).Scan(&txid, &offset)
		switch {
		case errors.Is(err, stdsql.ErrNoRows) || isUndefinedTable(err):
		case err != nil:
			return 0, err
		default:
			after = []any{txid.String, offset}
		}
	} else {
		var offset int64
		err := t.db.QueryRowContext(ctx, "SELECT offset_acked FROM "+offsets+" WHERE consumer_group = ?", group).Scan(&offset)
		switch {
		case errors.Is(err, stdsql.ErrNoRows) || isUndefinedTable(err):
		case err != nil:
			return 0, err
		default:
			after = []any{offset}
		}
	}
	if after == nil && initial && t.cfg.InitialOffset == Newest {
		return 0, nil
	}
	return t.countRows(ctx, topic, after)
}

// countRows counts topic's rows, all of them or those after the position
// after: (transaction id as text, offset) on PostgreSQL, (offset) on
// MySQL. A table that does not exist has none.
func (t *Transport) countRows(ctx context.Context, topic string, after []any) (int64, error) {
	q := "SELECT COUNT(*) FROM " + t.schema.messagesTable(topic)
	switch {
	case after == nil:
	case t.dialect == postgres:
		q += ` WHERE (transaction_id, "offset") > ($1::xid8, $2)`
	default:
		q += " WHERE `offset` > ?"
	}
	var n int64
	err := t.db.QueryRowContext(ctx, q, after...).Scan(&n)
	if isUndefinedTable(err) {
		return 0, nil
	}
	return n, err
}

// CheckHealth pings the database on a connection of the pool, within
// connect_timeout for a new connection and for the ping, and ctx
// ([transports.HealthChecker]). The error names the key and the address of
// what did not answer; it never contains the DSN's password.
func (t *Transport) CheckHealth(ctx context.Context) error {
	if t.subs.Closed() {
		return errClosed
	}
	if err := t.ping(ctx, t.connect); err != nil {
		return newRedactor(t.cfg.DSN).wrap(fmt.Sprintf("%s: health check of %s", t.dialect, transports.RedactDSN(t.cfg.DSN)), err)
	}
	return nil
}
