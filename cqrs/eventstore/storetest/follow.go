package storetest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/millrace/millrace/cqrs/eventstore"
)

// TxStore is a store whose appends can be made in transactions that commit
// or roll back, as [RunFollow] drives it: [SQL] makes one of a store with
// eventstore.TxAppender, [Buffered] one of any store.
type TxStore interface {
	eventstore.Store
	// Begin starts a transaction.
	Begin(ctx context.Context) (Tx, error)
}

// Tx is a transaction of a [TxStore].
type Tx interface {
	// Append appends as eventstore.Store.Append does, inside the
	// transaction: the events exist if and only if it commits.
	Append(ctx context.Context, stream string, expected int64, events []eventstore.Event) (int64, error)
	// Commit commits the transaction.
	Commit() error
	// Rollback rolls it back.
	Rollback() error
}

// SQLStore is a store kept in an SQL database, such as package sql's Store.
type SQLStore interface {
	eventstore.Store
	eventstore.TxAppender
}

// SQL returns s as a [TxStore] whose transactions are transactions of db,
// s's database, appended to with AppendTx.
func SQL(s SQLStore, db *sql.DB) TxStore { return sqlTxStore{s, db} }

type sqlTxStore struct {
	SQLStore
	db *sql.DB
}

func (s sqlTxStore) Begin(ctx context.Context) (Tx, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	return sqlTx{s.SQLStore, tx}, nil
}

type sqlTx struct {
	s  eventstore.TxAppender
	tx *sql.Tx
}

func (t sqlTx) Append(ctx context.Context, stream string, expected int64, events []eventstore.Event) (int64, error) {
	return t.s.AppendTx(ctx, t.tx, stream, expected, events)
}
func (t sqlTx) Commit() error   { return t.tx.Commit() }
func (t sqlTx) Rollback() error { return t.tx.Rollback() }

// Buffered returns s as a [TxStore] for a store without transactions (such
// as eventstore.Memory): a transaction keeps its appends and makes them,
// one after another, when it commits; a rolled back one makes none. Append
// in such a transaction returns 0.
func Buffered(s eventstore.Store) TxStore { return bufferedStore{s} }

type bufferedStore struct{ eventstore.Store }

func (s bufferedStore) Begin(ctx context.Context) (Tx, error) {
	return &bufferedTx{s: s.Store, ctx: ctx}, nil
}

type bufferedTx struct {
	s       eventstore.Store
	ctx     context.Context
	appends []bufferedAppend
}

type bufferedAppend struct {
	stream   string
	expected int64
	events   []eventstore.Event
}

func (t *bufferedTx) Append(_ context.Context, stream string, expected int64, events []eventstore.Event) (int64, error) {
	t.appends = append(t.appends, bufferedAppend{stream, expected, events})
	return 0, nil
}

func (t *bufferedTx) Commit() error {
	for _, a := range t.appends {
		if _, err := t.s.Append(t.ctx, a.stream, a.expected, a.events); err != nil {
			return err
		}
	}
	return nil
}

func (t *bufferedTx) Rollback() error { return nil }

// The shape of RunFollow's checks.
const (
	followWriters       = 32
	followMaxTxs        = 3    // transactions per writer
	followMaxAppends    = 3    // appends per transaction
	followMaxEvents     = 4    // events per append
	followStreams       = 6    // streams of a check, shared by the writers
	followMaxHoldMicro  = 3000 // how long a transaction stays open after its appends
	followAbortPercent  = 30
	followDirectPercent = 30 // transactions that are plain Appends instead
	followMaxPage       = 64 // the follower's largest ReadAll limit
)

// RunFollow is the property test of the global order. Each check (see
// rapid's -rapid.checks) draws a plan: 32 writers, each running up to 3
// transactions of up to 3 appends (of 1 to 4 events, with Any, to streams
// shared by the writers) held open for a random time up to 3ms after their
// appends, then committed or, three times in ten, rolled back; three in ten
// of the transactions are plain Store.Append calls instead, each committing
// on its own (merged, in stores that merge concurrent appends). A follower
// pages through ReadAll meanwhile, from where it had got to, with random
// page sizes. Once the writers are done and the follower has caught up, it
// must have seen:
//   - every committed event exactly once and no rolled back one,
//   - in increasing Position, each stream's events in version order
//     (versions 1, 2, 3, ... of each stream, without gaps), and
//   - the events of a transaction that committed before another began
//     before that transaction's events.
//
// s is used by every check (each on streams of its own), so it may be
// expensive to make.
func RunFollow(t *testing.T, s TxStore) {
	t.Helper()
	var checks atomic.Int64
	var pos eventstore.Position // where the follower had got to
	rapid.Check(t, func(rt *rapid.T) {
		plan := drawPlan(rt)
		prefix := "follow-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-" + strconv.FormatInt(checks.Add(1), 10) + "-"
		res := runPlan(t.Context(), s, plan, prefix, pos)
		pos = res.pos
		if err := res.check(prefix); err != nil {
			rt.Fatal(err)
		}
	})
}

// txPlan is one transaction of a writer.
type txPlan struct {
	appends []appendPlan // in stream order, so that transactions never deadlock
	hold    time.Duration
	abort   bool
	// direct makes the appends with Store.Append, each committing on its
	// own (hold and abort do not apply).
	direct bool
}

type appendPlan struct {
	stream int
	events int
}

type followPlan struct {
	writers [][]txPlan
	page    int
}

func drawPlan(rt *rapid.T) followPlan {
	p := followPlan{writers: make([][]txPlan, followWriters)}
	for w := range p.writers {
		n := rapid.IntRange(1, followMaxTxs).Draw(rt, "txs")
		for range n {
			var tx txPlan
			for range rapid.IntRange(1, followMaxAppends).Draw(rt, "appends") {
				tx.appends = append(tx.appends, appendPlan{
					stream: rapid.IntRange(0, followStreams-1).Draw(rt, "stream"),
					events: rapid.IntRange(1, followMaxEvents).Draw(rt, "events"),
				})
			}
			slices.SortStableFunc(tx.appends, func(a, b appendPlan) int { return a.stream - b.stream })
			tx.hold = time.Duration(rapid.IntRange(0, followMaxHoldMicro).Draw(rt, "hold_us")) * time.Microsecond
			tx.abort = rapid.IntRange(0, 99).Draw(rt, "abort") < followAbortPercent
			tx.direct = rapid.IntRange(0, 99).Draw(rt, "direct") < followDirectPercent
			p.writers[w] = append(p.writers[w], tx)
		}
	}
	p.page = rapid.IntRange(1, followMaxPage).Draw(rt, "page")
	return p
}

// txRecord is what a writer saw of one transaction.
type txRecord struct {
	ids       []string
	committed bool
	began     time.Time // before its first append
	ended     time.Time // after Commit returned
}

type followResult struct {
	txs  []txRecord
	seen []eventstore.Event // this check's events, in the order the follower read them
	pos  eventstore.Position
	errs []error
}

func runPlan(ctx context.Context, s TxStore, plan followPlan, prefix string, from eventstore.Position) followResult {
	var (
		res     followResult
		mu      sync.Mutex
		writers sync.WaitGroup
		done    = make(chan struct{})
	)
	fail := func(err error) {
		mu.Lock()
		res.errs = append(res.errs, err)
		mu.Unlock()
	}
	for w, txs := range plan.writers {
		writers.Go(func() {
			for i, p := range txs {
				rec, err := runTx(ctx, s, p, fmt.Sprintf("%sw%d-t%d", prefix, w, i), prefix)
				if err != nil {
					fail(fmt.Errorf("writer %d, transaction %d: %w", w, i, err))
				}
				mu.Lock()
				res.txs = append(res.txs, rec)
				mu.Unlock()
			}
		})
	}
	go func() {
		writers.Wait()
		close(done)
	}()

	committed := 0
	pos := from
	var writersDone bool
	var deadline time.Time
	for {
		page, err := s.ReadAll(ctx, pos, plan.page)
		if err != nil {
			fail(fmt.Errorf("ReadAll after %v: %w", pos, err))
			break
		}
		for _, e := range page {
			if !pos.Less(e.Position) {
				fail(fmt.Errorf("ReadAll after %v returned an event at %v", pos, e.Position))
			}
			pos = e.Position
			if strings.HasPrefix(e.StreamID, prefix) {
				res.seen = append(res.seen, e)
			}
		}
		if !writersDone {
			select {
			case <-done:
				writersDone = true
				deadline = time.Now().Add(visibleWithin)
				mu.Lock()
				for _, tx := range res.txs {
					if tx.committed {
						committed += len(tx.ids)
					}
				}
				mu.Unlock()
			default:
			}
		}
		if writersDone && len(res.seen) >= committed && len(page) < plan.page {
			break
		}
		if len(page) == 0 {
			if writersDone && time.Now().After(deadline) {
				fail(fmt.Errorf("follower saw %d of %d committed events %v after the writers were done", len(res.seen), committed, visibleWithin))
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	<-done
	res.pos = pos
	return res
}

// runTx runs one planned transaction; its events' ids start with name.
func runTx(ctx context.Context, s TxStore, p txPlan, name, prefix string) (txRecord, error) {
	rec := txRecord{began: time.Now()}
	var tx Tx
	if !p.direct {
		var err error
		if tx, err = s.Begin(ctx); err != nil {
			return rec, err
		}
	}
	for a, ap := range p.appends {
		es := make([]eventstore.Event, ap.events)
		for j := range es {
			id := name + "-a" + strconv.Itoa(a) + "-e" + strconv.Itoa(j)
			es[j] = eventstore.Event{ID: id, Type: "Followed", Payload: []byte(id)}
			rec.ids = append(rec.ids, id)
		}
		stream := prefix + "s" + strconv.Itoa(ap.stream)
		if p.direct {
			if _, err := s.Append(ctx, stream, eventstore.Any, es); err != nil {
				return rec, fmt.Errorf("append: %w", err)
			}
			continue
		}
		if _, err := tx.Append(ctx, stream, eventstore.Any, es); err != nil {
			_ = tx.Rollback()
			return rec, fmt.Errorf("append in a transaction: %w", err)
		}
	}
	switch {
	case p.direct:
	case p.abort:
		time.Sleep(p.hold)
		return rec, tx.Rollback()
	default:
		time.Sleep(p.hold)
		if err := tx.Commit(); err != nil {
			return rec, fmt.Errorf("commit: %w", err)
		}
	}
	rec.committed, rec.ended = true, time.Now()
	return rec, nil
}

func (res followResult) check(prefix string) error {
	if len(res.errs) > 0 {
		return errors.Join(res.errs...)
	}
	// Which transaction each event is of, and whether it committed.
	txOf := map[string]int{}
	want := 0
	for i, tx := range res.txs {
		for _, id := range tx.ids {
			txOf[id] = i
		}
		if tx.committed {
			want += len(tx.ids)
		}
	}
	seen := map[string]eventstore.Position{}
	next := map[string]int64{} // next version expected per stream
	for _, e := range res.seen {
		i, ok := txOf[e.ID]
		switch {
		case !ok:
			return fmt.Errorf("follower saw event %q that no writer appended", e.ID)
		case !res.txs[i].committed:
			return fmt.Errorf("follower saw event %q of a rolled back transaction", e.ID)
		}
		if _, dup := seen[e.ID]; dup {
			return fmt.Errorf("follower saw event %q twice", e.ID)
		}
		seen[e.ID] = e.Position
		if v := next[e.StreamID] + 1; e.Version != v {
			return fmt.Errorf("follower saw version %d of %s (event %q at %v) where version %d was due", e.Version, strings.TrimPrefix(e.StreamID, prefix), e.ID, e.Position, v)
		}
		next[e.StreamID] = e.Version
	}
	if len(seen) != want {
		return fmt.Errorf("follower saw %d events, %d committed", len(seen), want)
	}
	// A transaction that committed before another began comes first.
	type span struct{ first, last eventstore.Position }
	spans := make([]span, len(res.txs))
	for i, tx := range res.txs {
		if !tx.committed {
			continue
		}
		for j, id := range tx.ids {
			p := seen[id]
			if j == 0 || p.Less(spans[i].first) {
				spans[i].first = p
			}
			if j == 0 || spans[i].last.Less(p) {
				spans[i].last = p
			}
		}
	}
	for i, a := range res.txs {
		for j, b := range res.txs {
			if !a.committed || !b.committed || !a.ended.Before(b.began) {
				continue
			}
			if !spans[i].last.Less(spans[j].first) {
				return fmt.Errorf("transaction %s committed before %s began, but its events (%v to %v) do not all come before the other's (from %v)",
					txName(a, prefix), txName(b, prefix), spans[i].first, spans[i].last, spans[j].first)
			}
		}
	}
	return nil
}

func txName(tx txRecord, prefix string) string {
	if len(tx.ids) == 0 {
		return "(empty)"
	}
	name, _, _ := strings.Cut(strings.TrimPrefix(tx.ids[0], prefix), "-a")
	return name
}
