package sqltransport

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
		return len(b.msgs)
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
// outcome of the statement that carried its messages.
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
			if len(r.stmts) != 3 {
				t.Fatalf("%d statements %v, want 3: first, payments, then all %d callers together", len(r.stmts), r.stmts, tt.callers)
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
			if n := len(g.running); n != 0 {
				t.Errorf("%d topics still marked running", n)
			}
		})
	}
}

// A batch's statement is cancelled only when every call in it gave up.
func TestGroupCommit_BatchOutlivesOneCallersCancel(t *testing.T) {
	for _, all := range []bool{false, true} {
		t.Run(fmt.Sprintf("all_cancelled=%v", all), func(t *testing.T) {
			var g groupCommit
			r := &recorder{release: make(chan struct{})}
			go func() { _ = g.publish(context.Background(), "orders", msgs("first", 1), r.insert) }()
			waitFor(t, "the first statement", func() bool { r.mu.Lock(); defer r.mu.Unlock(); return len(r.stmts) == 1 })

			ctxA, cancelA := context.WithCancel(context.Background())
			ctxB, cancelB := context.WithCancel(context.Background())
			defer cancelB()
			errA, errB := make(chan error, 1), make(chan error, 1)
			go func() { errA <- g.publish(ctxA, "orders", msgs("a", 1), r.insert) }()
			waitFor(t, "a to gather", func() bool { return g.waiting("orders") == 1 })
			go func() { errB <- g.publish(ctxB, "orders", msgs("b", 1), r.insert) }()
			waitFor(t, "b to gather", func() bool { return g.waiting("orders") == 2 })
			cancelA()
			if all {
				cancelB()
				// The batch's context ends once the last caller's does
				// (context.AfterFunc runs in a goroutine of its own).
				waitFor(t, "the batch's context to end", func() bool {
					g.mu.Lock()
					defer g.mu.Unlock()
					return g.running["orders"].ctx.Err() != nil
				})
			}
			close(r.release)
			a, b := <-errA, <-errB
			if all {
				if !errors.Is(a, context.Canceled) || !errors.Is(b, context.Canceled) {
					t.Errorf("every caller gave up: got %v and %v, want context.Canceled", a, b)
				}
				return
			}
			if a != nil || b != nil {
				t.Errorf("one caller of two gave up: got %v and %v, want both inserted", a, b)
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
