package framework_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/framework"
	"github.com/millrace/millrace/framework/frameworktest"
	"github.com/millrace/millrace/middleware"
	"github.com/millrace/millrace/transports"
	"github.com/millrace/millrace/transports/memory"
)

func newApp(t *testing.T, yaml string) *framework.App {
	return newAppWithLog(t, yaml, io.Discard)
}

// newAppWithLog builds an App on its own memory transport, from config YAML.
func newAppWithLog(t *testing.T, yaml string, logTo io.Writer) *framework.App {
	return newAppOn(t, yaml, logTo, nil)
}

// newAppOn builds an App from config YAML on the transport it configures,
// as wrap (if not nil) wraps it.
func newAppOn(t *testing.T, yaml string, logTo io.Writer, wrap func(transports.Transport) transports.Transport) *framework.App {
	t.Helper()
	reg, err := framework.Transports()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := framework.Parse([]byte(yaml), nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	tr, cleanup, err := framework.OpenTransport(context.Background(), cfg, reg, framework.NewLogger(cfg, logTo))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	if wrap != nil {
		tr = wrap(tr)
	}
	app, err := framework.New(cfg, framework.NewLogger(cfg, logTo), tr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = app.Stop(context.Background()) })
	return app
}

// sharedBroker is a memory broker that outlives the Apps using it, as a real
// broker outlives service instances.
type sharedBroker struct{ b *memory.Broker }

func (s sharedBroker) Publisher() message.Publisher { return publishOnly{s.b} }
func (s sharedBroker) Subscriber(group string) (message.Subscriber, error) {
	return s.b.Subscriber(group), nil
}
func (s sharedBroker) Close() error { return nil }
func (s sharedBroker) Delay(ctx context.Context, topic, group string, msg *message.Message, d time.Duration) error {
	return s.b.Delay(ctx, topic, group, msg, d)
}

type publishOnly struct{ b *memory.Broker }

func (p publishOnly) Publish(topic string, msgs ...*message.Message) error {
	return p.b.Publish(topic, msgs...)
}
func (publishOnly) Close() error { return nil }

var _ transports.Transport = sharedBroker{}

func TestShutdown_InFlightHandlerFinishesBeforeStopReturns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := frameworktest.New(t)
		started, release := make(chan struct{}), make(chan struct{})
		var ctxErr error
		framework.Handle(h.App, "slow", "jobs", func(ctx context.Context, j Job) error {
			close(started)
			<-release
			ctxErr = ctx.Err()
			return nil
		})
		h.Start()
		h.Publish("jobs", Job{Seq: 1})
		<-started

		stopped := make(chan error, 1)
		go func() { stopped <- h.Stop() }()
		h.Advance(25 * time.Second) // within shutdown.timeout (30s)
		select {
		case err := <-stopped:
			t.Fatalf("Stop returned (%v) while a handler was in flight", err)
		default:
		}
		close(release)
		if err := <-stopped; err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if ctxErr != nil {
			t.Errorf("handler context was cancelled during the drain: %v", ctxErr)
		}
		if o := h.Outcomes("slow"); len(o) != 1 || o[0].Err != nil {
			t.Errorf("outcomes %+v, want one success (acked)", o)
		}
	})
}

func TestShutdown_MessagesNotTakenStayWithTheBroker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		broker, err := memory.New(*memory.DefaultConfig(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer broker.Close()
		reg, _ := framework.Transports()
		cfg, err := framework.Parse([]byte("service:\n  name: worker\n"), nil, reg)
		if err != nil {
			t.Fatal(err)
		}
		var handled atomic.Int64
		started, release := make(chan struct{}, 10), make(chan struct{})
		newWorker := func() *framework.App {
			app, err := framework.New(cfg, framework.NewLogger(cfg, io.Discard), sharedBroker{broker})
			if err != nil {
				t.Fatal(err)
			}
			framework.Handle(app, "work", "jobs", func(ctx context.Context, j Job) error {
				started <- struct{}{}
				<-release
				handled.Add(1)
				return nil
			})
			return app
		}

		first := newWorker()
		if err := first.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			if err := first.Publish(context.Background(), "jobs", Job{Seq: i}); err != nil {
				t.Fatal(err)
			}
		}
		<-started // one message in flight, four waiting in the broker
		stopped := make(chan error, 1)
		go func() { stopped <- first.Stop(context.Background()) }()
		synctest.Wait()
		close(release)
		if err := <-stopped; err != nil {
			t.Fatal(err)
		}
		if handled.Load() != 1 {
			t.Fatalf("first instance handled %d, want only the in-flight one", handled.Load())
		}

		second := newWorker()
		if err := second.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		for range 4 { // the four the first instance never took
			<-started
		}
		synctest.Wait() // the last handler returns; a duplicate would start now
		if err := second.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		if handled.Load() != 5 {
			t.Errorf("handled %d messages in all, want 5: messages were lost or duplicated", handled.Load())
		}
	})
}

func TestShutdown_DrainTimeoutThenHandlerContextCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := frameworktest.New(t, frameworktest.WithConfig("shutdown:\n  timeout: 10s\n"))
		started := make(chan struct{})
		var cancelledAt time.Duration
		begin := time.Now()
		framework.Handle(h.App, "stuck", "jobs", func(ctx context.Context, j Job) error {
			close(started)
			<-ctx.Done()
			cancelledAt = time.Since(begin)
			return ctx.Err()
		})
		h.Start()
		h.Publish("jobs", Job{})
		<-started
		if err := h.Stop(); err != nil {
			t.Fatalf("Stop: %v (the handler returned within cancel_grace)", err)
		}
		if cancelledAt != 10*time.Second {
			t.Errorf("handler context cancelled after %v, want exactly the 10s drain timeout", cancelledAt)
		}
		if f := h.Failures("stuck"); len(f) != 1 || !errors.Is(f[0].Err, context.Canceled) {
			t.Errorf("failures %+v: want the interrupted delivery nacked", f)
		}
	})
}

func TestShutdown_HandlerIgnoringCancellationIsAbandoned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := frameworktest.New(t, frameworktest.WithConfig("shutdown:\n  timeout: 2s\n  cancel_grace: 1s\n"))
		started, release := make(chan struct{}), make(chan struct{})
		framework.Handle(h.App, "deaf", "jobs", func(ctx context.Context, j Job) error {
			close(started)
			<-release // ignores ctx
			return nil
		})
		h.Start()
		h.Publish("jobs", Job{})
		<-started
		begin := time.Now()
		err := h.Stop()
		if err == nil || !strings.Contains(err.Error(), "abandoned") {
			t.Errorf("Stop = %v, want an error saying a handler was abandoned", err)
		}
		if took := time.Since(begin); took != 3*time.Second {
			t.Errorf("Stop took %v, want timeout + cancel_grace = 3s", took)
		}
		close(release) // let the goroutine end before the bubble does
		synctest.Wait()
	})
}

func TestStop_NeverStartedReturnsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		app := newApp(t, "")
		begin := time.Now()
		if err := app.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		if time.Since(begin) != 0 {
			t.Errorf("Stop of a never-started App took %v", time.Since(begin))
		}
		if err := app.Start(context.Background()); err == nil {
			t.Error("Start after Stop succeeded")
		}
	})
}

func TestRun_SIGTERMDrainsInFlightHandler(t *testing.T) {
	app := newApp(t, "")
	started, release := make(chan struct{}), make(chan struct{})
	var ctxErr atomic.Value
	var acked atomic.Bool
	framework.Handle(app, "slow", "jobs", func(ctx context.Context, j Job) error {
		close(started)
		<-release
		if ctx.Err() != nil {
			ctxErr.Store(ctx.Err())
		}
		return nil
	})
	app.Observe(framework.ObserverFunc(func(o framework.Outcome) { acked.Store(o.Err == nil) }))
	done := make(chan error, 1)
	go func() { done <- app.Run(context.Background()) }()
	<-app.Started()
	if err := app.Publish(context.Background(), "jobs", Job{}); err != nil {
		t.Fatal(err)
	}
	<-started
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned (%v) while a handler was in flight", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after SIGTERM = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the handler finished")
	}
	if ctxErr.Load() != nil {
		t.Errorf("handler context cancelled during drain: %v", ctxErr.Load())
	}
	if !acked.Load() {
		t.Error("in-flight message was not acked after the handler finished")
	}
}

// brokenTransport's subscriptions end as soon as they start, as when a
// broker goes away for good.
type brokenTransport struct{ transports.Transport }

func (b brokenTransport) Subscriber(string) (message.Subscriber, error) { return closingSub{}, nil }

type closingSub struct{}

func (closingSub) Subscribe(context.Context, string) (<-chan *message.Message, error) {
	ch := make(chan *message.Message)
	close(ch)
	return ch, nil
}
func (closingSub) Close() error { return nil }

func TestRun_SubscriptionEndingUnexpectedlyStopsTheApp(t *testing.T) {
	// Not in a synctest bubble: Run installs signal handling, whose runtime
	// goroutine must not be started from inside a bubble.
	func() {
		reg, _ := framework.Transports()
		cfg, _ := framework.Parse([]byte(noStack), nil, reg)
		tr, _, err := framework.OpenTransport(context.Background(), cfg, reg, framework.NewLogger(cfg, io.Discard))
		if err != nil {
			t.Fatal(err)
		}
		app, err := framework.New(cfg, framework.NewLogger(cfg, io.Discard), brokenTransport{tr})
		if err != nil {
			t.Fatal(err)
		}
		framework.Handle(app, "work", "jobs", noop)
		err = app.Run(context.Background())
		if err == nil || !strings.Contains(err.Error(), `handler "work": subscription to "jobs" in group "millrace.work" ended unexpectedly`) {
			t.Fatalf("Run = %v", err)
		}
	}()
}

// TestShutdown_WaitingMessagesAreHandedBackAtOnce: a message that waits to
// be handled when shutdown begins (held by an open breaker, waiting for the
// throttle, between two retries) is nacked at once, not after the wait:
// Stop returns long before the breaker's open_timeout, the throttle's turn
// or the retry's backoff.
func TestShutdown_WaitingMessagesAreHandedBackAtOnce(t *testing.T) {
	tests := []struct {
		name   string
		config string
		fail   bool
	}{
		{"held by an open breaker", `
middleware:
  retry: {max_attempts: 1}
  delayed_retry: {enabled: false}
  breaker: {consecutive_failures: 1, open_timeout: 10m}
shutdown: {timeout: 20m}
`, true},
		{"waiting for the throttle", `
middleware:
  throttle: {rate: 0.001, burst: 1}
shutdown: {timeout: 20m}
`, false},
		{"between two retries", `
middleware:
  retry: {max_attempts: 5, initial_interval: 10m, max_interval: 10m}
  delayed_retry: {enabled: false}
shutdown: {timeout: 20m}
`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := frameworktest.New(t, frameworktest.WithConfig(tt.config))
				var calls atomic.Int64
				framework.Handle(h.App, "work", "jobs", func(context.Context, Job) error {
					calls.Add(1)
					if tt.fail {
						return errors.New("downstream unavailable")
					}
					return nil
				})
				h.Start()
				h.Publish("jobs", Job{Key: "a"})
				h.Publish("jobs", Job{Key: "b"})
				h.Advance(time.Second) // the first ran; the rest waits
				before := calls.Load()

				start := time.Now()
				if err := h.Stop(); err != nil {
					t.Fatalf("stop: %v", err)
				}
				if took := time.Since(start); took > time.Second {
					t.Errorf("stop took %v, want it at once", took)
				}
				if calls.Load() != before {
					t.Errorf("handler ran %d more times after shutdown began", calls.Load()-before)
				}
				var heldBack int
				for _, o := range h.Outcomes("work") {
					if o.Err != nil && errors.Is(o.Err, middleware.ErrShuttingDown) {
						heldBack++
					}
				}
				if heldBack != 1 {
					t.Errorf("%d messages handed back as shutting down, want 1; outcomes: %v", heldBack, h.Outcomes("work"))
				}
			})
		})
	}
}

func TestGo_WorkerRunsUntilShutdownBeginsAndStopWaitsForIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := frameworktest.New(t)
		var ended atomic.Bool
		started := make(chan struct{})
		h.App.Go("relay", func(ctx context.Context) error {
			close(started)
			<-ctx.Done()
			time.Sleep(time.Second) // finishing its last batch
			ended.Store(true)
			return ctx.Err()
		})
		h.Start()
		<-started
		if err := h.Stop(); err != nil {
			t.Fatal(err)
		}
		if !ended.Load() {
			t.Error("Stop returned before the worker ended")
		}
	})
}

func TestGo_WorkerErrorStopsRun(t *testing.T) {
	app := newApp(t, "")
	app.Go("relay", func(ctx context.Context) error { return errors.New("database gone") })
	err := app.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "relay: database gone") {
		t.Errorf("Run = %v, want the worker's error", err)
	}
}
