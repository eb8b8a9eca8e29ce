package sql

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/transports"
)

var _ transports.EphemeralSubscriber = (*Transport)(nil)

// SubscribeEphemeral subscribes to topic for this process alone (it
// implements [transports.EphemeralSubscriber]): in no consumer group, from
// the topic's newest position, keeping its position in memory. It
// receives the messages committed after it opened: on PostgreSQL exactly
// those, a transaction still open then included; on MySQL a message whose
// INSERT was running as it opened may be missed (see the package
// documentation). It
// writes no offsets row and holds no transaction or lock while a message
// is out, so it leaves nothing behind when it ends; the topic's tables are
// created if missing, as Publish creates them.
//
// Messages come one at a time, in the order group subscriptions receive
// them. Ack moves on to the next; Nack delivers the message again after
// resend_interval, and so does ack_deadline passing without either (the
// message's context then ends). Every query is bounded by query_timeout; a
// failed one is logged and tried again after poll_interval.
//
// The channel closes when ctx ends or the transport closes; a message out
// then is not delivered again. After Close, SubscribeEphemeral fails with
// an error wrapping [transports.ErrClosed].
func (t *Transport) SubscribeEphemeral(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if err := checkTopic(topic); err != nil {
		return nil, fmt.Errorf("%s: subscribe: %w", t.dialect, err)
	}
	s, err := t.ephemeral.Add(func() (*ephemeralSubscription, error) { return t.subscribeEphemeral(ctx, topic) })
	if err != nil {
		return nil, err
	}
	return s.out, nil
}

// ephemeralSubscription is one subscription of SubscribeEphemeral.
type ephemeralSubscription struct {
	t      *Transport
	topic  string
	logger watermill.LoggerAdapter
	query  string // selects the next batch after pos

	pos      position
	snapshot string // PostgreSQL: the server's snapshot at the start
	out      chan *message.Message
	cancel   context.CancelFunc
	done     chan struct{}
}

// subscribeEphemeral opens the subscription; t.ephemeral is locked.
func (t *Transport) subscribeEphemeral(ctx context.Context, topic string) (*ephemeralSubscription, error) {
	start, cancel := t.query.start(ctx)
	defer cancel()
	if err := t.ensureTables(start, topic); err != nil {
		return nil, err
	}
	pos, err := t.schema.newestPosition(start, t.db, topic)
	if err != nil {
		return nil, fmt.Errorf("%s: subscribe to %s: newest position: %w", t.dialect, topic, t.query.check(start, "query", err))
	}
	s := &ephemeralSubscription{
		t:        t,
		topic:    topic,
		logger:   t.logger.With(watermill.LogFields{"topic": topic}),
		query:    t.schema.ephemeralQuery(topic),
		pos:      pos,
		snapshot: pos.snapshot,
		out:      make(chan *message.Message),
		done:     make(chan struct{}),
	}
	ctx, s.cancel = context.WithCancel(ctx)
	go s.run(ctx)
	return s, nil
}

// Close ends the subscription and waits until its channel is closed.
func (s *ephemeralSubscription) Close() error {
	s.cancel()
	<-s.done
	return nil
}

// ephemeralQuery selects the batch after a position. On PostgreSQL,
// after ($1, $2), the transaction id and offset, with a group's reading
// rules (see SelectQuery), leaving out the rows of transactions that had
// ended when the subscription opened ($3, its snapshot): those that
// committed while an older transaction still ran lie after the start
// position, but were published before. On MySQL, after ?, the offset, as
// a locking read that waits for inserts into that range that have not
// committed, as a group's serializable read does, so that a row
// committing late is not skipped. Neither holds anything once it
// returned.
func (s schema) ephemeralQuery(topic string) string {
	limit := strconv.Itoa(s.batchSize)
	if s.d == postgres {
		return `SELECT "offset", transaction_id, uuid, payload, metadata FROM ` + s.messagesTable(topic) + `
			WHERE (transaction_id, "offset") > ($1::xid8, $2::bigint)
				AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
				AND NOT pg_visible_in_snapshot(transaction_id, $3::pg_snapshot)
			ORDER BY transaction_id ASC, "offset" ASC
			LIMIT ` + limit
	}
	return "SELECT `offset`, uuid, payload, metadata FROM " + s.messagesTable(topic) +
		" WHERE `offset` > ? ORDER BY `offset` ASC LIMIT " + limit + " LOCK IN SHARE MODE"
}

// ephemeralRow is a message read and the position after it.
type ephemeralRow struct {
	msg *message.Message
	pos position
}

func (s *ephemeralSubscription) run(ctx context.Context) {
	defer close(s.done)
	defer close(s.out)
	defer s.t.ephemeral.Remove(s)
	cfg := s.t.cfg
	for {
		rows, err := s.fetch(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.logger.Error("Reading messages failed; retrying", err, watermill.LogFields{"wait_time": cfg.PollInterval})
		}
		for _, r := range rows {
			if !s.deliver(ctx, r.msg) {
				return
			}
			s.pos = r.pos
		}
		if err == nil && len(rows) == cfg.BatchSize {
			continue // more may wait
		}
		if !sleep(ctx, cfg.PollInterval) {
			return
		}
	}
}

// fetch reads the next batch, within query_timeout.
func (s *ephemeralSubscription) fetch(ctx context.Context) ([]ephemeralRow, error) {
	q := s.t.query
	ctx, cancel := q.start(ctx)
	defer cancel()
	args := []any{s.pos.offset}
	if s.t.dialect == postgres {
		args = []any{uint64(s.pos.txid), s.pos.offset, s.snapshot}
	}
	rows, err := s.t.db.QueryContext(ctx, s.query, args...)
	if err != nil {
		return nil, q.check(ctx, "query", err)
	}
	defer func() { _ = rows.Close() }()
	var out []ephemeralRow
	for rows.Next() {
		var (
			r                       ephemeralRow
			uuid, payload, metadata []byte
			err                     error
		)
		if s.t.dialect == postgres {
			err = rows.Scan(&r.pos.offset, &r.pos.txid, &uuid, &payload, &metadata)
		} else {
			err = rows.Scan(&r.pos.offset, &uuid, &payload, &metadata)
		}
		if err != nil {
			return out, err
		}
		r.msg = decodeRow(s.t.dialect, s.topic, r.pos.offset, uuid, payload, metadata)
		out = append(out, r)
	}
	// Rows read before an error are delivered; the rest come next time.
	return out, q.check(ctx, "query", rows.Err())
}

// deliver hands msg out until it is acked, and reports false if ctx ended
// first. A nacked message, and one neither acked nor nacked within
// ack_deadline, is handed out again (a copy) after resend_interval.
func (s *ephemeralSubscription) deliver(ctx context.Context, msg *message.Message) bool {
	cfg := s.t.cfg
	for {
		msgCtx, cancel := context.WithTimeout(ctx, cfg.AckDeadline)
		msg.SetContext(msgCtx)
		select {
		case s.out <- msg:
		case <-ctx.Done():
			cancel()
			return false
		}
		select {
		case <-msg.Acked():
			cancel()
			return true
		case <-msg.Nacked():
		case <-msgCtx.Done():
		}
		cancel()
		if !sleep(ctx, cfg.ResendInterval) {
			return false
		}
		msg = msg.Copy()
	}
}

// sleep waits d, and reports false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}
