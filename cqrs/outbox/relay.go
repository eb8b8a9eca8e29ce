package outbox

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5/stdlib"
)

// stats count what the relay did.
type stats struct {
	relayed atomic.Int64
	batches atomic.Int64
}

// Stats are the relay's counts since the outbox was made.
type Stats struct {
	// Relayed is how many messages the relay published.
	Relayed int64
	// Batches is how many relay transactions committed.
	Batches int64
}

// Stats returns the relay's counts.
func (o *Outbox) Stats() Stats {
	return Stats{Relayed: o.stats.relayed.Load(), Batches: o.stats.batches.Load()}
}

// relay moves committed messages to the transport until ctx ends: a batch
// at a time, in one transaction that holds the relay's lease (so that of
// several instances one relays at a time), publishes the batch and marks it
// sent; a relay that dies mid-batch leaves it unsent for the next. It
// wakes on PostgreSQL's NOTIFY within milliseconds of a commit, and polls
// every PollInterval otherwise. It returns when ctx ends, after the batch
// in hand.
func (o *Outbox) relay(ctx context.Context) error {
	wake := make(chan struct{}, 1)
	if o.cfg.Dialect == Postgres {
		go o.listen(ctx, wake)
	}
	backoff := time.Duration(0)
	recheck := time.Duration(0) // after a wake-up that found nothing yet
	lastCleanup := time.Now()
	poll := time.NewTimer(0)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		default:
		}
		n, locked, err := o.relayBatch(context.WithoutCancel(ctx))
		switch {
		case err != nil:
			backoff = min(max(2*backoff, 50*time.Millisecond), 5*time.Second)
			o.app.Logger().Warn("outbox relay: batch failed; it stays in the outbox", slog.Any("error", err), slog.Duration("retry_in", backoff))
		default:
			backoff = 0
		}
		if locked && time.Since(lastCleanup) >= o.cfg.CleanupInterval {
			lastCleanup = time.Now()
			if err := o.cleanup(context.WithoutCancel(ctx)); err != nil {
				o.app.Logger().Warn("outbox relay: cleanup failed", slog.Any("error", err))
			}
		}
		if err == nil && n == o.cfg.BatchSize {
			continue // more waiting
		}
		if n > 0 {
			recheck = 0
		}
		wait := o.cfg.PollInterval
		switch {
		case backoff > 0:
			wait = backoff
		case recheck > 0:
			// Woken by a commit whose messages were not readable yet: a
			// transaction that began before it is still open (PostgreSQL
			// hands out messages below the oldest running transaction).
			// Look again soon, then less and less often.
			wait = recheck
			recheck = min(2*recheck, o.cfg.PollInterval)
		}
		poll.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
			if !locked {
				// Another instance relays: let it; look again at the poll.
				select {
				case <-ctx.Done():
					return nil
				case <-poll.C:
				}
			} else if recheck == 0 {
				recheck = 5 * time.Millisecond
			}
		case <-poll.C:
		}
		if !poll.Stop() {
			select {
			case <-poll.C:
			default:
			}
		}
	}
}

// outgoing is a message read from the outbox.
type outgoing struct {
	id    int64
	topic string
	msg   *message.Message
}

// relayBatch relays one batch. locked reports whether this relay held the
// lease (false: another instance relays now).
func (o *Outbox) relayBatch(ctx context.Context) (n int, locked bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, o.cfg.CallTimeout)
	defer cancel()
	tx, err := o.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, false, o.timedOut(ctx, "relay: begin", err)
	}
	defer func() { _ = tx.Rollback() }()
	if locked, err = o.lock(ctx, tx); err != nil || !locked {
		return 0, locked, err
	}
	batch, err := o.read(ctx, tx)
	if err != nil || len(batch) == 0 {
		return 0, true, err
	}
	if err := o.publish(ctx, batch); err != nil {
		return 0, true, err
	}
	if err := o.mark(ctx, tx, batch); err != nil {
		return 0, true, err
	}
	if err := tx.Commit(); err != nil {
		// Published but not marked: the next batch publishes these again
		// (same ids, which consumers deduplicate).
		return 0, true, o.timedOut(ctx, "relay: commit", err)
	}
	o.stats.relayed.Add(int64(len(batch)))
	o.stats.batches.Add(1)
	return len(batch), true, nil
}

// lock takes the relay's lease for the length of tx.
func (o *Outbox) lock(ctx context.Context, tx *sql.Tx) (bool, error) {
	switch o.cfg.Dialect {
	case Postgres:
		var ok bool
		if err := tx.QueryRowContext(ctx, o.stmt.lock).Scan(&ok); err != nil {
			return false, o.timedOut(ctx, "relay: lease", err)
		}
		return ok, nil
	default:
		var name string
		switch err := tx.QueryRowContext(ctx, o.stmt.lock).Scan(&name); {
		case errors.Is(err, sql.ErrNoRows):
			return false, nil // locked by another relay
		case err != nil:
			return false, o.timedOut(ctx, "relay: lease", err)
		}
		return true, nil
	}
}

// read returns the next batch, oldest first.
func (o *Outbox) read(ctx context.Context, tx *sql.Tx) ([]outgoing, error) {
	rows, err := tx.QueryContext(ctx, o.stmt.unsent, o.cfg.BatchSize)
	if err != nil {
		return nil, o.timedOut(ctx, "relay: read", err)
	}
	defer rows.Close()
	var out []outgoing
	for rows.Next() {
		var (
			og      outgoing
			uuid    string
			payload []byte
			md      []byte
		)
		if err := rows.Scan(&og.id, &og.topic, &uuid, &payload, &md); err != nil {
			return nil, o.timedOut(ctx, "relay: read", err)
		}
		m := message.NewMessage(uuid, payload)
		if err := json.Unmarshal(md, &m.Metadata); err != nil {
			return nil, fmt.Errorf("outbox: relay: metadata of message %d (%s): %w", og.id, uuid, err)
		}
		o.upcast(m)
		og.msg = m
		out = append(out, og)
	}
	if err := rows.Err(); err != nil {
		return nil, o.timedOut(ctx, "relay: read", err)
	}
	return out, nil
}

// publish publishes batch in its order: each run of messages to one topic
// in one call.
func (o *Outbox) publish(ctx context.Context, batch []outgoing) error {
	for i := 0; i < len(batch); {
		j := i + 1
		for j < len(batch) && batch[j].topic == batch[i].topic {
			j++
		}
		topic := batch[i].topic
		msgs := make([]*message.Message, 0, j-i)
		for _, og := range batch[i:j] {
			if group := og.msg.Metadata.Get(prepareKey); group != "" {
				delete(og.msg.Metadata, prepareKey)
				if key := topic + "\x00" + group; !o.prepared[key] {
					if err := o.app.Prepare(ctx, topic, group); err != nil {
						return fmt.Errorf("outbox: relay: %w", err)
					}
					o.prepared[key] = true
				}
			}
			msgs = append(msgs, og.msg)
		}
		if err := o.app.PublishMessage(ctx, topic, msgs...); err != nil {
			return fmt.Errorf("outbox: relay: %w", err)
		}
		i = j
	}
	return nil
}

// mark marks batch sent in tx.
func (o *Outbox) mark(ctx context.Context, tx *sql.Tx, batch []outgoing) error {
	ids := make([]int64, len(batch))
	for i, og := range batch {
		ids[i] = og.id
	}
	var err error
	switch o.cfg.Dialect {
	case Postgres:
		_, err = tx.ExecContext(ctx, o.stmt.markOne, ids)
	default:
		args := make([]any, len(ids))
		for i, id := range ids {
			args[i] = id
		}
		_, err = tx.ExecContext(ctx, o.stmt.markOne+"("+strings.TrimSuffix(strings.Repeat("?,", len(ids)), ",")+")", args...)
	}
	if err != nil {
		return o.timedOut(ctx, "relay: mark sent", err)
	}
	return nil
}

// cleanup deletes messages sent longer than Retention ago.
func (o *Outbox) cleanup(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, o.cfg.CallTimeout)
	defer cancel()
	var err error
	switch o.cfg.Dialect {
	case Postgres:
		_, err = o.db.ExecContext(ctx, o.stmt.cleanup, o.cfg.Retention.Milliseconds())
	default:
		_, err = o.db.ExecContext(ctx, o.stmt.cleanup, o.cfg.Retention.Microseconds())
	}
	if err != nil {
		return o.timedOut(ctx, "cleanup", err)
	}
	return nil
}

// listen wakes the relay on every NOTIFY of the outbox's channel, on a
// connection of its own, until ctx ends; it connects again after a lost
// connection. Missed notifications only cost a poll interval.
func (o *Outbox) listen(ctx context.Context, wake chan<- struct{}) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := o.listenOnce(ctx, wake)
		if ctx.Err() != nil {
			return
		}
		o.app.Logger().Debug("outbox relay: listening for notifications failed; polling meanwhile", slog.Any("error", err))
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (o *Outbox) listenOnce(ctx context.Context, wake chan<- struct{}) error {
	cctx, cancel := context.WithTimeout(ctx, o.cfg.CallTimeout)
	conn, err := o.db.Conn(cctx)
	cancel()
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("outbox: LISTEN needs the pgx driver, not %T", dc)
		}
		pc := sc.Conn()
		lctx, cancel := context.WithTimeout(ctx, o.cfg.CallTimeout)
		_, err := pc.Exec(lctx, `LISTEN "`+o.stmt.channel+`"`)
		cancel()
		if err != nil {
			return driver.ErrBadConn
		}
		// What committed before LISTEN took effect woke nobody: look now.
		select {
		case wake <- struct{}{}:
		default:
		}
		for {
			if _, err := pc.WaitForNotification(ctx); err != nil {
				// Lost, or interrupted in the middle of a wait (ctx):
				// either way not to be given back to the pool.
				return driver.ErrBadConn
			}
			select {
			case wake <- struct{}{}:
			default:
			}
		}
	})
}
