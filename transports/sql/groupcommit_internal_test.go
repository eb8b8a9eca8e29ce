package sql

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// recorder is an insert function that records what each statement got and
// holds the first statement until released.
type recorder struct {
	mu       sync.Mutex
	stmts    [][]string // payloads per statement
	ctxs     []context.Context
	release  chan struct{}
	failWith error
}

func (r *recorder) insert(ctx context.Context, msgs []*message.Message) error {
	r.mu.Lock()
	first := len(r.stmts) == 0
	var payloads []string
	for _, m := range msgs {
		payloads = append(payloads, string(m.Payload))
	}
	r.stmts = append(r.stmts, payloads)
	r.ctxs = append(r.ctxs, ctx)
	r.mu.Unlock()
	if first {
		<-r.release
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return r.failWith
}

// waiting returns how many messages gather for topic's next statement.
func (g *groupCommit) waiting(topic string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if b := g.running[topic]; b != nil {
		return b.rows
	}
	return 0
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func msgs(prefix string, n int) []*message.Message {
	out := make([]*message.Message, n)
	for i := range out {
		out[i] = message.NewMessage(fmt.Sprintf("%s-%d", prefix, i), []byte(fmt.Sprintf("%s-%d", prefix, i)))
	}
	return out
}

// Calls that arrive while a statement runs go together in the next one,
// each call's messages together and in order, and each call returns the
// outcome of the statement that carried its messages (when the merged one
// failed, its own statement's).
func TestGroupCommit_CallsDuringAnInsertShareTheNext(t *testing.T) {
	tests := []struct {
		name    string
		fail    error
		callers int
	}{
		{"committed", nil, 10},
		{"failed", errors.New("connection lost"), 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var g groupCommit
			r := &recorder{release: make(chan struct{}), failWith: tt.fail}
			ctx := context.Background()
			firstDone := make(chan error, 1)
			go func() { firstDone <- g.publish(ctx, "orders", msgs("first", 1), r.insert) }()
			waitFor(t, "the first statement", func() bool { r.mu.Lock(); defer r.mu.Unlock(); return len(r.stmts) == 1 })

			errs := make(chan error, tt.callers)
			for c := range tt.callers {
				go func() { errs <- g.publish(ctx, "orders", msgs(fmt.Sprintf("c%d", c), 3), r.insert) }()
			}
			waitFor(t, "the callers to gather", func() bool { return g.waiting("orders") == 3*tt.callers })
			// Another topic does not wait for orders.
			if err := g.publish(ctx, "payments", msgs("p", 1), r.insert); !errors.Is(err, tt.fail) {
				t.Fatalf("payments: %v, want %v", err, tt.fail)
			}
			close(r.release)
			if err := <-firstDone; !errors.Is(err, tt.fail) {
				t.Errorf("first call: %v, want %v", err, tt.fail)
			}
			for range tt.callers {
				if err := <-errs; !errors.Is(err, tt.fail) {
					t.Errorf("batched call: %v, want %v", err, tt.fail)
				}
			}

			r.mu.Lock()
			defer r.mu.Unlock()
			want := 3 // first, payments, then all callers together
			if tt.fail != nil {
				want += tt.callers // then each call again on its own
			}
			if len(r.stmts) != want {
				t.Fatalf("%d statements %v, want %d", len(r.stmts), r.stmts, want)
			}
			batch := r.stmts[2]
			if len(batch) != 3*tt.callers {
				t.Fatalf("batched statement has %d messages, want %d", len(batch), 3*tt.callers)
			}
			for i := 0; i < len(batch); i += 3 {
				var c int
				if _, err := fmt.Sscanf(batch[i], "c%d-0", &c); err != nil {
					t.Fatalf("call's messages split or reordered: %v", batch)
				}
				for j := range 3 {
					if want := fmt.Sprintf("c%d-%d", c, j); batch[i+j] != want {
						t.Fatalf("call's messages split or reordered at %d: got %q, want %q in %v", i+j, batch[i+j], want, batch)
					}
				}
			}
			// The last statement's goroutine clears the topic after its
			// callers returned.
			waitFor(t, "no topic marked running", func() bool { g.mu.Lock(); defer g.mu.Unlock(); return len(g.running) == 0 })
		})
	}
}

// A call whose context ends while its batch waits leaves the batch: it
// returns the context's error and its messages are not inserted, while
// the other calls of the batch are.
func TestGroupCommit_WaitingCallHonoursItsContext(t *testing.T) {
	var g groupCommit
	r := &recorder{release: make(chan struct{})}
	go func() { _ = g.publish(context.Background(), "orders", msgs("first", 1), r.insert) }()
	waitFor(t, "the first statement", func() bool { r.mu.Lock(); defer r.mu.Unlock(); return len(r.stmts) == 1 })

	ctxA, cancelA := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelA()
	errA, errB := make(chan error, 1), make(chan error, 1)
	go func() { errA <- g.publish(ctxA, "orders", msgs("a", 1), r.insert) }()
	waitFor(t, "a to gather", func() bool { return g.waiting("orders") == 1 })
	go func() { errB <- g.publish(context.Background(), "orders", msgs("b", 1), r.insert) }()
	waitFor(t, "b to gather", func() bool { return g.waiting("orders") == 2 })

	// The first statement is still held: a's deadline passes meanwhile.
	select {
	case err := <-errA:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("a: %v, want context.DeadlineExceeded", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a still waits after its deadline")
	}
	close(r.release)
	if err := <-errB; err != nil {
		t.Fatalf("b: %v", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if got := r.stmts[len(r.stmts)-1]; len(got) != 1 || got[0] != "b-0" {
		t.Errorf("last statement inserted %v, want only b's message", got)
	}
}

// A running batch is cancelled only when every call in it gave up.
func TestGroupCommit_RunningBatchCancelledOnlyWhenAllGaveUp(t *testing.T) {
	for _, all := range []bool{false, true} {
		t.Run(fmt.Sprintf("all_gave_up=%v", all), func(t *testing.T) {
			var g groupCommit
			first := make(chan struct{})
			second := make(chan struct{})
			var batchCtx context.Context
			insert := func(ctx context.Context, m []*message.Message) error {
				if string(m[0].Payload) == "first-0" {
					<-first
					return nil
				}
				batchCtx = ctx
				close(second)
				<-ctx.Done() // a statement that only ends when cancelled
				return ctx.Err()
			}
			go func() { _ = g.publish(context.Background(), "orders", msgs("first", 1), insert) }()
			waitFor(t, "the first statement", func() bool {
				g.mu.Lock()
				defer g.mu.Unlock()
				return g.running["orders"] == nil && len(g.running) == 1
			})
			ctxA, cancelA := context.WithCancel(context.Background())
			ctxB, cancelB := context.WithCancel(context.Background())
			defer cancelB()
			errA, errB := make(chan error, 1), make(chan error, 1)
			go func() { errA <- g.publish(ctxA, "orders", msgs("a", 1), insert) }()
			waitFor(t, "a to gather", func() bool { return g.waiting("orders") == 1 })
			go func() { errB <- g.publish(ctxB, "orders", msgs("b", 1), insert) }()
			waitFor(t, "b to gather", func() bool { return g.waiting("orders") == 2 })
			close(first)
			<-second // a and b's statement runs
			cancelA()
			if !all {
				select {
				case <-batchCtx.Done():
					t.Fatal("statement cancelled though b still waits for it")
				case <-time.After(100 * time.Millisecond):
				}
				cancelB()
			} else {
				cancelB()
			}
			// Both gave up now: the statement is cancelled, and both learn
			// its outcome.
			for _, ch := range []chan error{errA, errB} {
				select {
				case err := <-ch:
					if !errors.Is(err, context.Canceled) {
						t.Errorf("got %v, want context.Canceled", err)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("statement not cancelled after every caller gave up")
				}
			}
		})
	}
}

// When a merged statement fails, each call is inserted again on its own:
// a call with a bad message fails alone, the others succeed, even when the
// insert panics.
func TestGroupCommit_FailedBatchRetriesEachCall(t *testing.T) {
	for _, panics := range []bool{false, true} {
		t.Run(fmt.Sprintf("panics=%v", panics), func(t *testing.T) {
			var g groupCommit
			r := &recorder{release: make(chan struct{})}
			insert := func(ctx context.Context, m []*message.Message) error {
				for _, msg := range m {
					if string(msg.Payload) == "bad-0" {
						if panics {
							panic("driver bug")
						}
						return errors.New("value too long")
					}
				}
				return r.insert(ctx, m)
			}
			go func() { _ = g.publish(context.Background(), "orders", msgs("first", 1), insert) }()
			waitFor(t, "the first statement", func() bool { r.mu.Lock(); defer r.mu.Unlock(); return len(r.stmts) == 1 })
			errs := map[string]chan error{"good": make(chan error, 1), "bad": make(chan error, 1), "fine": make(chan error, 1)}
			n := 0
			for _, name := range []string{"good", "bad", "fine"} {
				go func() { errs[name] <- g.publish(context.Background(), "orders", msgs(name, 1), insert) }()
				n++
				waitFor(t, name+" to gather", func() bool { return g.waiting("orders") == n })
			}
			close(r.release)
			for name, ch := range errs {
				err := <-ch
				if (err != nil) != (name == "bad") {
					t.Errorf("%s: %v", name, err)
				}
			}
		})
	}
}

// A call with groupCommitMaxRows messages, or one that would make the
// waiting batch larger than that, does not wait for the running INSERT: it
// inserts on its own at once.
func TestGroupCommit_LargeCallsDoNotWait(t *testing.T) {
	tests := []struct {
		name     string
		gathered int // messages already waiting for the next statement
		call     int
	}{
		{"own batch", 0, groupCommitMaxRows},
		{"would overflow the waiting batch", groupCommitMaxRows - 2, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var g groupCommit
			r := &recorder{release: make(chan struct{})}
			ctx := context.Background()
			go func() { _ = g.publish(ctx, "orders", msgs("first", 1), r.insert) }()
			waitFor(t, "the first statement", func() bool { r.mu.Lock(); defer r.mu.Unlock(); return len(r.stmts) == 1 })
			gathered := make(chan error, 1)
			if tt.gathered > 0 {
				go func() { gathered <- g.publish(ctx, "orders", msgs("small", tt.gathered), r.insert) }()
				waitFor(t, "the small call to gather", func() bool { return g.waiting("orders") == tt.gathered })
			}
			// The first statement is still held: this call must not wait
			// for it.
			if err := g.publish(ctx, "orders", msgs("large", tt.call), r.insert); err != nil {
				t.Fatal(err)
			}
			r.mu.Lock()
			n, last := len(r.stmts), r.stmts[len(r.stmts)-1]
			r.mu.Unlock()
			if n != 2 || len(last) != tt.call {
				t.Fatalf("%d statements, the last of %d messages; want the large call's %d on its own", n, len(last), tt.call)
			}
			close(r.release)
			if tt.gathered > 0 {
				if err := <-gathered; err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
