package sql

import (
	"context"
	stdsql "database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
)

// Delayed redelivery.
//
// Delay stores the message in the table <prefix>delayed with a due time
// computed by the database clock (so clocks of the services do not matter).
// One goroutine per Transport polls that table every PollInterval; in one
// transaction it locks the due rows (FOR UPDATE SKIP LOCKED, so several
// services share the work), inserts each into the private topic of its
// group, <topic>.__group.<group>, and deletes it. Only subscriptions of that
// group read the private topic (groupSubscriber merges it with the topic),
// so the message reaches exactly the one group. Moving is transactional: a
// crash leaves the row in the delayed table, never loses it.

// delayer owns the delayed table and its poller.
type delayer struct {
	t     *Transport
	table string

	cancel context.CancelFunc
	done   chan struct{}
}

// newDelayer creates the delayed messages table, within connect (Open's
// bound), and starts the poller.
func newDelayer(ctx context.Context, t *Transport, connect *bound) (*delayer, error) {
	d := &delayer{t: t, table: t.dialect.quote(t.cfg.TablePrefix + "delayed"), done: make(chan struct{})}
	ctx, cancel := connect.start(ctx)
	defer cancel()
	if err := d.createTable(ctx); err != nil {
		return nil, connect.check(ctx, "create table", err)
	}
	pollCtx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	go d.run(pollCtx)
	return d, nil
}

func (d *delayer) createTable(ctx context.Context) error {
	if d.t.dialect == mysqlDialect {
		_, err := d.t.db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+d.table+` (
			id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
			topic VARCHAR(255) NOT NULL,
			grp VARCHAR(255) NOT NULL,
			uuid VARCHAR(255) NOT NULL,
			payload LONGBLOB,
			metadata JSON,
			due_at DATETIME(6) NOT NULL,
			INDEX (due_at)
		)`)
		return err
	}
	// Concurrent CREATE ... IF NOT EXISTS can collide in PostgreSQL: take
	// an advisory lock, as watermill-sql does for its tables.
	tx, err := d.t.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	stmts := []string{
		fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", wsql.DefaultSchemaInitializationLock("millrace_delayed")),
		"CREATE TABLE IF NOT EXISTS " + d.table + ` (
			id BIGSERIAL PRIMARY KEY,
			topic VARCHAR(255) NOT NULL,
			grp VARCHAR(255) NOT NULL,
			uuid VARCHAR(255) NOT NULL,
			payload BYTEA,
			metadata JSON,
			due_at TIMESTAMPTZ NOT NULL
		)`,
		"CREATE INDEX IF NOT EXISTS " + d.t.dialect.quote(d.t.cfg.TablePrefix+"delayed_due_at") + " ON " + d.table + " (due_at)",
	}
	for _, q := range stmts {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// Delay schedules msg (UUID, payload and metadata) for delivery to consumer
// group group of topic after delay, measured by the database clock. It
// returns once the message is committed to the delayed table, so the caller
// may then ack the original. The message is delivered at least once, to
// that group only, no sooner than delay and typically within PollInterval
// after it. A delay of 0 or less delivers at the next poll.
func (t *Transport) Delay(ctx context.Context, topic, group string, msg *message.Message, delay time.Duration) error {
	if t.subs.Closed() {
		return errClosed
	}
	if topic == "" || !validName.MatchString(topic) || !validName.MatchString(group) {
		return fmt.Errorf("%s: delay to topic %q, group %q: only letters, digits and - $ : . _ are allowed", t.dialect, topic, group)
	}
	ctx, cancel := t.query.start(ctx)
	defer cancel()
	private := groupTopic(topic, group)
	if err := t.ensureTables(ctx, private); err != nil {
		return err
	}
	md, err := json.Marshal(msg.Metadata)
	if err != nil {
		return fmt.Errorf("%s: delay message %s: metadata: %w", t.dialect, msg.UUID, err)
	}
	micros := max(delay, 0).Microseconds()
	var q string
	if t.dialect == postgres {
		q = "INSERT INTO " + t.delay.table + ` (topic, grp, uuid, payload, metadata, due_at)
			VALUES ($1, $2, $3, $4, $5, clock_timestamp() + ($6::bigint) * INTERVAL '1 microsecond')`
	} else {
		q = "INSERT INTO " + t.delay.table + ` (topic, grp, uuid, payload, metadata, due_at)
			VALUES (?, ?, ?, ?, ?, UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND)`
	}
	payload := []byte(msg.Payload)
	if payload == nil {
		payload = []byte{}
	}
	if _, err := t.db.ExecContext(ctx, q, topic, group, msg.UUID, payload, md, micros); err != nil {
		return fmt.Errorf("%s: delay message %s: %w", t.dialect, msg.UUID, t.query.check(ctx, "insert", err))
	}
	return nil
}

func (d *delayer) run(ctx context.Context) {
	defer close(d.done)
	ticker := time.NewTicker(d.t.cfg.PollInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		for {
			n, err := d.moveDue(ctx)
			if err != nil {
				if ctx.Err() == nil {
					d.t.logger.Error("Moving due delayed messages failed; retrying at next poll", err, nil)
				}
				break
			}
			if n < d.t.cfg.BatchSize {
				break
			}
		}
	}
}

func (d *delayer) close() {
	d.cancel()
	<-d.done
}

type delayedRow struct {
	id       int64
	topic    string
	group    string
	uuid     string
	payload  []byte
	metadata []byte
}

// moveDue moves up to BatchSize due messages into their groups' private
// topics in one transaction, within query_timeout, and returns how many it
// moved.
func (d *delayer) moveDue(ctx context.Context) (int, error) {
	ctx, cancel := d.t.query.start(ctx)
	defer cancel()
	n, err := d.move(ctx)
	return n, d.t.query.check(ctx, "move due delayed messages", err)
}

func (d *delayer) move(ctx context.Context) (int, error) {
	now, ph := "clock_timestamp()", "$1"
	if d.t.dialect == mysqlDialect {
		now, ph = "UTC_TIMESTAMP(6)", "?"
	}
	tx, err := d.t.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback() }()
	rows, err := tx.QueryContext(ctx, fmt.Sprintf(
		"SELECT id, topic, grp, uuid, payload, metadata FROM %s WHERE due_at <= %s ORDER BY due_at, id LIMIT %d FOR UPDATE SKIP LOCKED",
		d.table, now, d.t.cfg.BatchSize))
	if err != nil {
		return 0, err
	}
	var due []delayedRow
	for rows.Next() {
		var r delayedRow
		if err := rows.Scan(&r.id, &r.topic, &r.group, &r.uuid, &r.payload, &r.metadata); err != nil {
			_ = rows.Close()
			return 0, err
		}
		due = append(due, r)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return 0, err
	}
	if len(due) == 0 {
		return 0, nil
	}
	del := "DELETE FROM " + d.table + " WHERE id = " + ph
	for _, r := range due {
		if err := d.publishRow(ctx, tx, r); err != nil {
			return 0, err
		}
		if _, err := tx.ExecContext(ctx, del, r.id); err != nil {
			return 0, err
		}
	}
	return len(due), tx.Commit()
}

func (d *delayer) publishRow(ctx context.Context, tx *stdsql.Tx, r delayedRow) error {
	private := groupTopic(r.topic, r.group)
	if err := d.t.ensureTables(ctx, private); err != nil {
		return err
	}
	msg := message.NewMessage(r.uuid, r.payload)
	decodeMetadata(msg, r.metadata)
	q, err := d.t.schema.InsertQuery(wsql.InsertQueryParams{Topic: private, Msgs: message.Messages{msg}})
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, q.Query, q.Args...); err != nil {
		return fmt.Errorf("insert into %s: %w", private, err)
	}
	return nil
}
