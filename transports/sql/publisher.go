package sql

import (
	"context"
	stdsql "database/sql"
	"fmt"
	"sync"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
)

// maxRowsPerInsert bounds one INSERT statement: PostgreSQL and MySQL take
// at most 65535 bind parameters, and a message uses three.
const maxRowsPerInsert = 1000

// Execer runs a statement: *sql.Tx, and also *sql.Conn or *sql.DB.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (stdsql.Result, error)
}

// publisher is the transport's shared publisher. Close waits for running
// Publish calls; Publish after Close fails with errClosed.
type publisher struct {
	t       *Transport
	commits groupCommit

	mu     sync.RWMutex
	closed bool
}

// Publish inserts msgs into topic's table with one multi-row INSERT (up to
// 1000 messages; more are inserted by several statements in one
// transaction), so they become visible together, in the order given. It
// returns once they are committed. The context of the first message and
// query_timeout bound the call. On an error none of them was published; a driver error after
// the commit was sent (a connection lost at that moment) leaves it unknown,
// and publishing again may then duplicate: delivery is at least once.
func (p *publisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return errClosed
	}
	if len(msgs) == 0 {
		return checkTopic(topic)
	}
	if err := checkTopic(topic); err != nil {
		return fmt.Errorf("%s: publish: %w", p.t.dialect, err)
	}
	return p.commits.publish(msgs[0].Context(), topic, msgs, func(ctx context.Context, msgs []*message.Message) error {
		return p.insertAll(ctx, topic, msgs)
	})
}

// insertAll inserts msgs into topic's table, all or none: with one INSERT,
// or in a transaction when they need several.
func (p *publisher) insertAll(ctx context.Context, topic string, msgs []*message.Message) error {
	ctx, cancel := p.t.query.start(ctx)
	defer cancel()
	if len(msgs) <= maxRowsPerInsert {
		return p.t.insert(ctx, p.t.db, topic, msgs)
	}
	tx, err := p.t.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: publish to %s: %w", p.t.dialect, topic, p.t.query.check(ctx, "begin", err))
	}
	if err := p.t.insert(ctx, tx, topic, msgs); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: publish to %s: %w", p.t.dialect, topic, p.t.query.check(ctx, "commit", err))
	}
	return nil
}

func (p *publisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	return nil
}

// TxPublisher returns a publisher that inserts into the topic tables
// through tx, the caller's open transaction: the messages become visible
// to subscribers if and only if tx commits, together with whatever else tx
// wrote. This is what a transactional outbox needs.
//
// Publish never commits or rolls back tx. The first Publish to a topic this
// transport has not used yet creates the topic's tables first on a
// separate connection of the transport's pool (DDL inside tx could commit
// it implicitly on MySQL). tx must belong to a database handle connected to
// the same database as the transport. The publisher is valid as long as tx
// is; closing it does nothing.
//
// On PostgreSQL, subscribers see a message only once every transaction that
// started before its own has ended, so keep transactions short.
func (t *Transport) TxPublisher(tx Execer) message.Publisher {
	return txPublisher{t: t, tx: tx}
}

type txPublisher struct {
	t  *Transport
	tx Execer
}

func (p txPublisher) Publish(topic string, msgs ...*message.Message) error {
	if p.t.subs.Closed() {
		return errClosed
	}
	if len(msgs) == 0 {
		return checkTopic(topic)
	}
	if err := checkTopic(topic); err != nil {
		return fmt.Errorf("%s: publish: %w", p.t.dialect, err)
	}
	ctx, cancel := p.t.query.start(msgs[0].Context())
	defer cancel()
	return p.t.insert(ctx, p.tx, topic, msgs)
}

func (txPublisher) Close() error { return nil }

func checkTopic(topic string) error {
	if topic == "" || !validName.MatchString(topic) {
		return fmt.Errorf("invalid topic %q: only letters, digits and - $ : . _ are allowed", topic)
	}
	return nil
}

// insert creates topic's tables if needed and inserts msgs through ex,
// maxRowsPerInsert per statement. The caller checked topic.
func (t *Transport) insert(ctx context.Context, ex Execer, topic string, msgs []*message.Message) error {
	if err := t.ensureTables(ctx, topic); err != nil {
		return err
	}
	for len(msgs) > 0 {
		n := min(len(msgs), maxRowsPerInsert)
		q, err := t.schema.InsertQuery(wsql.InsertQueryParams{Topic: topic, Msgs: msgs[:n]})
		if err != nil {
			return fmt.Errorf("%s: publish to %s: %w", t.dialect, topic, err)
		}
		if _, err := ex.ExecContext(ctx, q.Query, q.Args...); err != nil {
			return fmt.Errorf("%s: publish to %s: %w", t.dialect, topic, t.query.check(ctx, "insert", err))
		}
		msgs = msgs[n:]
	}
	return nil
}

// ensureTables creates the tables of topic once per transport. ctx should
// be bounded (by query_timeout, or connect_timeout at Open).
func (t *Transport) ensureTables(ctx context.Context, topic string) error {
	if _, ok := t.tables.Load(topic); ok {
		return nil
	}
	if err := t.schema.createTables(ctx, t.db, topic); err != nil {
		return fmt.Errorf("%s: create tables of topic %s: %w", t.dialect, topic, t.query.check(ctx, "create table", err))
	}
	t.tables.Store(topic, struct{}{})
	return nil
}
