package sql

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/go-sql-driver/mysql"

	"github.com/millrace/millrace/cqrs/outbox"
	"github.com/millrace/millrace/saga"
)

// Bounds of group commit: how many batches commit at once, and how many
// saves a batch holds.
const (
	maxCommitters = 4
	maxBatch      = 64
)

// committer commits concurrent saves together: what a save costs is
// mostly its transaction's round trips and its commit, so under load the
// saves per transaction grow with the callers instead of the
// transactions. A save waits in a queue; up to maxCommitters goroutines
// take batches from it and commit each in one transaction of the outbox's
// database: every save's own UPDATE at its own expected version (or
// INSERT), then the winners' messages, a statement per topic. A batch
// holds one save per instance (a later one waits for the next batch) and
// writes its rows in instance order, so that batches never deadlock one
// another (the database may still pick one as a deadlock victim: that
// save fails, and its handler retries). When the database refuses a
// statement of a batch, each of its saves is committed again on its own,
// so that one save's failure is that save's only; when the database does
// not answer in time or the connection fails, every save of the batch
// fails with that error at once. A Save waits at most Config.CallTimeout
// (or its ctx).
type committer struct {
	mu      sync.Mutex
	queue   []*saveReq
	running int
}

// saveReq is one Save waiting for its outcome.
type saveReq struct {
	in       *saga.Instance
	data     []byte
	expected int64
	out      []saga.Outgoing
	err      error
	done     chan struct{}
}

func (r *saveReq) key() [2]string { return [2]string{r.in.Saga, r.in.ID} }

// save queues r and returns its outcome. A caller whose ctx ends while r
// waits gets ctx's error; r may still be committed (as a handler whose
// transaction committed but which was cut off before its ack).
func (c *committer) save(ctx context.Context, s *Store, r *saveReq) error {
	r.done = make(chan struct{})
	c.mu.Lock()
	c.queue = append(c.queue, r)
	if c.running < maxCommitters {
		c.running++
		go c.run(s)
	}
	c.mu.Unlock()
	wait, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	select {
	case <-r.done:
		return r.err
	case <-wait.Done():
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("saga/sql: save %s: not committed within %s (Config.CallTimeout); it may still commit: %w", r.in.ID, s.cfg.CallTimeout, context.DeadlineExceeded)
	}
}

// run commits batches until the queue is empty.
func (c *committer) run(s *Store) {
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.running--
			c.mu.Unlock()
			return
		}
		var batch, rest []*saveReq
		seen := map[[2]string]bool{}
		for _, r := range c.queue {
			if len(batch) < maxBatch && !seen[r.key()] {
				seen[r.key()] = true
				batch = append(batch, r)
			} else {
				rest = append(rest, r)
			}
		}
		c.queue = rest
		c.mu.Unlock()
		s.commitBatch(batch)
	}
}

// commitBatch commits batch and sets every save's outcome.
func (s *Store) commitBatch(batch []*saveReq) {
	slices.SortFunc(batch, func(a, b *saveReq) int {
		return cmp.Or(cmp.Compare(a.in.Saga, b.in.Saga), cmp.Compare(a.in.ID, b.in.ID))
	})
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CallTimeout)
	err := s.ob.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var won []*saveReq
		if s.cfg.Dialect == outbox.Postgres && len(batch) > 1 {
			if err := s.writeAll(ctx, tx, batch); err != nil {
				return err
			}
		} else {
			for _, r := range batch {
				r.err = s.write(ctx, tx, r)
			}
		}
		for _, r := range batch {
			if r.err == nil {
				won = append(won, r)
			} else if !errors.Is(r.err, saga.ErrConflict) && !errors.Is(r.err, saga.ErrExists) && !errors.Is(r.err, saga.ErrNotFound) {
				return r.err
			}
		}
		// The winners' messages, a statement per topic, each topic's in
		// the order they were saved.
		var topics []string
		byTopic := map[string][]*message.Message{}
		for _, r := range won {
			for _, o := range r.out {
				if _, ok := byTopic[o.Topic]; !ok {
					topics = append(topics, o.Topic)
				}
				byTopic[o.Topic] = append(byTopic[o.Topic], o.Msg)
			}
		}
		for _, t := range topics {
			if err := s.ob.PublishMessage(ctx, tx, t, byTopic[t]...); err != nil {
				return err
			}
		}
		return nil
	})
	timedOut := errors.Is(ctx.Err(), context.DeadlineExceeded)
	cancel()
	if err != nil {
		if len(batch) > 1 && !timedOut && !connectionError(err) {
			// A statement refused: find whose, each save on its own.
			for _, r := range batch {
				s.commitBatch([]*saveReq{r})
			}
			return
		}
		// No answer, or no connection: again save by save would only
		// wait again, each its own CallTimeout.
		if timedOut {
			err = fmt.Errorf("no answer within %s (Config.CallTimeout): %w", s.cfg.CallTimeout, err)
		}
		for _, r := range batch {
			r.err = fmt.Errorf("saga/sql: save %s (in a batch of %d): %w", r.in.ID, len(batch), err)
		}
	}
	for _, r := range batch {
		close(r.done)
	}
}

// connectionError reports whether err is a lost or refused connection,
// not a statement the database refused.
func connectionError(err error) bool {
	var ne net.Error
	return errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) || errors.Is(err, mysql.ErrInvalidConn) || errors.As(err, &ne)
}

// writeAll writes batch on PostgreSQL in two statements, one INSERT of
// the new instances and one UPDATE of the others at their versions, and
// sets each save's outcome (see write). A database error is returned.
func (s *Store) writeAll(ctx context.Context, tx *sql.Tx, batch []*saveReq) error {
	var creates, updates []*saveReq
	for _, r := range batch {
		if r.expected == 0 {
			creates = append(creates, r)
		} else {
			updates = append(updates, r)
		}
	}
	written := map[[2]string]bool{}
	collect := func(rows *sql.Rows, err error) error {
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var k [2]string
			if err := rows.Scan(&k[0], &k[1]); err != nil {
				return err
			}
			written[k] = true
		}
		return rows.Err()
	}
	if len(creates) > 0 {
		var q strings.Builder
		q.WriteString(s.q.insertMany)
		args := make([]any, 0, 7*len(creates))
		for i, r := range creates {
			if i > 0 {
				q.WriteString(", ")
			}
			n := len(args)
			fmt.Fprintf(&q, "($%d, $%d, $%d, $%d, $%d, $%d, $%d)", n+1, n+2, n+3, n+4, n+5, n+6, n+7)
			args = append(args, r.in.Saga, r.in.ID, string(r.in.Status), r.in.Version, r.data, r.in.Created, r.in.Updated)
		}
		q.WriteString(" ON CONFLICT (saga, id) DO NOTHING RETURNING saga, id")
		if err := collect(tx.QueryContext(ctx, q.String(), args...)); err != nil {
			return err
		}
	}
	if len(updates) > 0 {
		var q strings.Builder
		q.WriteString(s.q.updateManyHead)
		args := make([]any, 0, 7*len(updates))
		for i, r := range updates {
			if i > 0 {
				q.WriteString(", ")
			}
			n := len(args)
			fmt.Fprintf(&q, "($%d::varchar, $%d::varchar, $%d::varchar, $%d::bigint, $%d::bytea, $%d::timestamptz, $%d::bigint)", n+1, n+2, n+3, n+4, n+5, n+6, n+7)
			args = append(args, r.in.Saga, r.in.ID, string(r.in.Status), r.in.Version, r.data, r.in.Updated, r.expected)
		}
		q.WriteString(s.q.updateManyTail)
		if err := collect(tx.QueryContext(ctx, q.String(), args...)); err != nil {
			return err
		}
	}
	for _, r := range creates {
		if !written[r.key()] {
			r.err = saga.ErrExists
		}
	}
	for _, r := range updates {
		if written[r.key()] {
			continue
		}
		var one int
		err := tx.QueryRowContext(ctx, s.q.exists, r.in.Saga, r.in.ID).Scan(&one)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			r.err = saga.ErrNotFound
		case err != nil:
			return err
		default:
			r.err = saga.ErrConflict
		}
	}
	return nil
}

// write inserts or updates r's row in tx: nil if it did, else ErrExists,
// ErrConflict or ErrNotFound, or the database's error.
func (s *Store) write(ctx context.Context, tx *sql.Tx, r *saveReq) error {
	in := r.in
	if r.expected == 0 {
		res, err := tx.ExecContext(ctx, s.q.insert, in.Saga, in.ID, string(in.Status), in.Version, r.data, in.Created, in.Updated)
		var my *mysql.MySQLError
		if errors.As(err, &my) && my.Number == 1062 { // duplicate key
			return saga.ErrExists
		}
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return saga.ErrExists
		}
		return nil
	}
	res, err := tx.ExecContext(ctx, s.q.update, string(in.Status), in.Version, r.data, in.Updated, in.Saga, in.ID, r.expected)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return nil
	}
	var one int
	err = tx.QueryRowContext(ctx, s.q.exists, in.Saga, in.ID).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return saga.ErrNotFound
	case err != nil:
		return err
	}
	return saga.ErrConflict
}
