package frameworktest_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/millrace/millrace/framework"
	"github.com/millrace/millrace/framework/frameworktest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// noStack switches off the retrying middleware, so failures reach the
// transport and its redelivery.
const noStack = `
middleware:
  retry: {max_attempts: 1}
  delayed_retry: {enabled: false}
  poison: {enabled: false}
  breaker: {enabled: false}
`

type Ping struct {
	N int `json:"n"`
}

type Pong struct {
	N int `json:"n"`
}

func TestHarness_RecordsPublishedAndConsumed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := frameworktest.New(t)
		framework.Handle(h.App, "ponger", "pings", func(ctx context.Context, p Ping) error {
			return h.App.Publish(ctx, "pongs", Pong{N: p.N * 10})
		})
		h.Start()
		h.Publish("pings", Ping{N: 1})
		h.Publish("pings", Ping{N: 2})

		pongs := frameworktest.WaitPublished[Pong](h, "pongs", 2)
		if len(pongs) != 2 || pongs[0].N+pongs[1].N != 30 {
			t.Errorf("pongs = %+v", pongs)
		}
		if got := frameworktest.Published[Ping](h, "pings"); len(got) != 2 || got[0].N != 1 || got[1].N != 2 {
			t.Errorf("pings = %+v", got)
		}
		if got := frameworktest.Published[Pong](h, "pings"); len(got) != 0 {
			t.Errorf("Published[Pong] on pings = %+v, want other types left out", got)
		}
		if got := frameworktest.WaitConsumed[Ping](h, "ponger", 2); len(got) != 2 {
			t.Errorf("consumed = %+v", got)
		}
		if !frameworktest.AnyPublished(h, "pongs", func(p Pong) bool { return p.N == 20 }) {
			t.Error("AnyPublished did not find Pong{20}")
		}
		if frameworktest.AnyPublished(h, "pongs", func(p Pong) bool { return p.N == 99 }) {
			t.Error("AnyPublished found a Pong that was never published")
		}
		if len(h.Messages("pongs")) != 2 || len(h.Outcomes("ponger")) != 2 || len(h.Failures("ponger")) != 0 {
			t.Errorf("messages %d, outcomes %d, failures %d", len(h.Messages("pongs")), len(h.Outcomes("ponger")), len(h.Failures("ponger")))
		}
	})
}

func TestHarness_WaitFailedAndAdvanceControlTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Redelivery after a nack waits 1s, then 2s: the harness's clock is
		// the bubble's, so the test observes exact fake times.
		h := frameworktest.New(t, frameworktest.WithConfig("transport:\n  memory:\n    redelivery_delay: 1s\n    max_redelivery_delay: 1m\n"+noStack))
		var mu sync.Mutex
		var attempts []time.Time
		framework.Handle(h.App, "flaky", "pings", func(context.Context, Ping) error {
			mu.Lock()
			defer mu.Unlock()
			attempts = append(attempts, time.Now())
			if len(attempts) < 3 {
				return errors.New("not yet")
			}
			return nil
		})
		h.Start()
		start := time.Now()
		h.Publish("pings", Ping{N: 1})

		h.WaitFailed("flaky", 1)
		h.Advance(999 * time.Millisecond)
		if n := len(h.Failures("flaky")); n != 1 {
			t.Fatalf("redelivered before its delay: %d failures", n)
		}
		h.Advance(time.Millisecond)
		if n := len(h.Failures("flaky")); n != 2 {
			t.Fatalf("%d failures after 1s, want the redelivery to have failed again", n)
		}
		frameworktest.WaitConsumed[Ping](h, "flaky", 1)
		if got := time.Since(start); got != 3*time.Second {
			t.Errorf("success after %v of fake time, want 1s + 2s", got)
		}
	})
}

// fatalRecorder is a testing.TB whose Fatalf records the message and ends
// the calling goroutine, as testing.T's does, without failing the real test.
type fatalRecorder struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.msg = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) message() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.msg
}

func TestHarness_WaitTimesOutWithASummary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &fatalRecorder{TB: t}
		h := frameworktest.New(rec, frameworktest.WithTimeout(5*time.Second), frameworktest.WithConfig(noStack))
		framework.Handle(h.App, "refuser", "pings", func(context.Context, Ping) error { return errors.New("no pings today") })
		h.Start()
		h.Publish("pings", Ping{N: 7})

		done := make(chan struct{})
		start := time.Now()
		go func() {
			defer close(done)
			frameworktest.WaitConsumed[Ping](h, "refuser", 1)
		}()
		<-done
		if waited := time.Since(start); waited != 5*time.Second {
			t.Errorf("gave up after %v of fake time, want the 5s timeout", waited)
		}
		for _, want := range []string{`handler "refuser" consumed 1 Ping messages`, "pings:", `{"n":7}`, "refuser:", "failed: no pings today"} {
			if !strings.Contains(rec.message(), want) {
				t.Errorf("timeout message lacks %q:\n%s", want, rec.message())
			}
		}
	})
}

func TestHarness_WorksWithoutABubble(t *testing.T) {
	h := frameworktest.New(t)
	framework.Handle(h.App, "ponger", "pings", func(ctx context.Context, p Ping) error {
		return h.App.Publish(ctx, "pongs", Pong(p))
	})
	h.Start()
	h.Publish("pings", Ping{N: 3})
	if got := frameworktest.WaitPublished[Pong](h, "pongs", 1); got[0].N != 3 {
		t.Errorf("got %+v", got)
	}
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
}

func TestHarness_RejectsBadConfig(t *testing.T) {
	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		frameworktest.New(rec, frameworktest.WithConfig("handlers:\n  concurrency: zero\n"))
	}()
	<-done
	if !strings.Contains(rec.message(), `"handlers.concurrency"`) {
		t.Errorf("New with bad config: %q, want the key named", rec.message())
	}
}
