package sql

import (
	"context"
	stdsql "database/sql"
	"time"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
)

// beginner is the wsql.Beginner of a group's watermill-sql subscriptions.
// It gives their statements the limits watermill-sql does not:
//
//   - Every statement, BEGIN, COMMIT and ROLLBACK included, is bounded by
//     query_timeout, so a subscription on a server that stopped answering
//     reports it and tries again instead of waiting for ever. None of them
//     waits for a lock that a healthy subscription may hold long: the
//     group's offsets row is read with SKIP LOCKED (see groupOffsets).
//   - A SELECT is cancelled when the subscription's context ends or stop
//     is done (Close started). It reads and locks the group's offsets row
//     before any message of its transaction is delivered, so cancelling it
//     loses no ack.
//   - The statements that settle acks (the offset update, COMMIT) are not
//     cancelled by the subscription's context nor by stop: a subscription
//     that ends commits the offset of the messages acked before it ended,
//     instead of rolling it back and delivering them again.
type beginner struct {
	t    *Transport
	stop context.Context
}

func (b beginner) BeginTx(ctx context.Context, opts *stdsql.TxOptions) (wsql.Tx, error) {
	q := b.t.query
	// The transaction lives on a context of its own (database/sql rolls a
	// transaction back when its context ends), which only the bound of a
	// statement of it, and its end, cancel.
	txCtx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	timer := time.AfterFunc(q.d, func() { cancel(q.cause) })
	unhookCtx := context.AfterFunc(ctx, func() { cancel(context.Canceled) })
	unhookStop := context.AfterFunc(b.stop, func() { cancel(context.Canceled) })
	tx, err := b.t.db.BeginTx(txCtx, opts)
	timer.Stop()
	unhookCtx()
	unhookStop()
	if err == nil && txCtx.Err() != nil {
		// Ended as BEGIN returned: database/sql rolls it back.
		err = context.Cause(txCtx)
	}
	if err != nil {
		err = q.check(txCtx, "begin", err)
		cancel(nil)
		return nil, err
	}
	return &boundTx{Tx: tx, b: b, ctx: txCtx, cancel: cancel}, nil
}

func (b beginner) ExecContext(ctx context.Context, query string, args ...any) (wsql.Result, error) {
	ctx, cancel := b.t.query.start(ctx)
	defer cancel()
	res, err := b.t.db.ExecContext(ctx, query, args...)
	return res, b.t.query.check(ctx, "statement", err)
}

func (b beginner) QueryContext(ctx context.Context, query string, args ...any) (wsql.Rows, error) {
	ctx, cancel := b.t.query.start(ctx)
	rows, err := b.t.db.QueryContext(ctx, query, args...)
	if err != nil {
		err = b.t.query.check(ctx, "query", err)
		cancel()
		return nil, err
	}
	return &boundRows{Rows: rows, done: cancel}, nil
}

// boundTx is a transaction of beginner.
type boundTx struct {
	*stdsql.Tx
	b      beginner
	ctx    context.Context
	cancel context.CancelCauseFunc
}

// QueryContext runs a SELECT of the subscription: bounded, and cancelled
// when ctx ends or Close starts.
func (t *boundTx) QueryContext(ctx context.Context, query string, args ...any) (wsql.Rows, error) {
	q := t.b.t.query
	ctx, cancel := q.start(ctx)
	unhook := context.AfterFunc(t.b.stop, cancel)
	rows, err := t.Tx.QueryContext(ctx, query, args...)
	if err != nil {
		err = q.check(ctx, "query", err)
		unhook()
		cancel()
		return nil, err
	}
	return &boundRows{Rows: rows, done: func() { unhook(); cancel() }}, nil
}

// ExecContext runs a statement that settles acks: bounded, but not ended
// by ctx.
func (t *boundTx) ExecContext(ctx context.Context, query string, args ...any) (wsql.Result, error) {
	q := t.b.t.query
	ctx, cancel := q.start(context.WithoutCancel(ctx))
	defer cancel()
	res, err := t.Tx.ExecContext(ctx, query, args...)
	return res, q.check(ctx, "statement", err)
}

// Commit commits within query_timeout. The driver takes no context for
// it: on PostgreSQL pgx commits on the transaction's context, which the
// bound cancels; on MySQL the connection's read timeout (query_timeout
// and a tenth) ends a COMMIT the server does not answer.
func (t *boundTx) Commit() error { return t.end("commit", t.Tx.Commit) }

// Rollback rolls back within query_timeout, as Commit commits.
func (t *boundTx) Rollback() error { return t.end("rollback", t.Tx.Rollback) }

func (t *boundTx) end(what string, f func() error) error {
	q := t.b.t.query
	timer := time.AfterFunc(q.d, func() { t.cancel(q.cause) })
	start := time.Now()
	err := f()
	fired := !timer.Stop()
	t.cancel(nil)
	if err != nil && (fired || time.Since(start) >= q.d) {
		return q.timedOut(what, err)
	}
	return err
}

// boundRows releases its query's context once its rows are read. Rows
// are read before any of them is delivered, and on MySQL the connection is
// cut if a query's context ends while its rows are open: the bound, or
// stop, would otherwise cut it while the batch's messages are delivered,
// and the acks of the batch with it.
type boundRows struct {
	*stdsql.Rows
	done func()
}

func (r *boundRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.release()
	return false
}

func (r *boundRows) Close() error {
	err := r.Rows.Close()
	r.release()
	return err
}

func (r *boundRows) release() {
	if r.done != nil {
		_ = r.Rows.Close() // before the context ends
		r.done()
		r.done = nil
	}
}
