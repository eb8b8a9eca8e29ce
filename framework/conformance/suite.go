package conformance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/framework"
	"github.com/millrace/millrace/transports"
)

// Target is one transport the suite runs on.
type Target struct {
	// Kind is the transport.kind to select, for example "amqp".
	Kind string

	// Env returns the MILLRACE_ environment overrides that point the kind at
	// its broker (for example MILLRACE_TRANSPORT_KAFKA_BROKERS), as a
	// deployment would. It is called once per Run and may start an
	// in-process broker, stopped with t.Cleanup. Nil means none.
	Env func(t *testing.T) []string

	// Registry is the transport registry to use; nil means
	// framework.Transports().
	Registry *transports.Registry
}

// WaitTimeout bounds every wait of the suite on a broker. Waits poll and
// end as soon as what they wait for happened.
const WaitTimeout = 45 * time.Second

// baseConfig is the config every service of the suite starts from: the
// defaults with retry delays short enough for a test.
const baseConfig = `
handlers:
  concurrency: 2
middleware:
  retry:
    max_attempts: 3
    initial_interval: 10ms
    max_interval: 50ms
  delayed_retry:
    delays: [700ms]
shutdown:
  timeout: 20s
`

// Run runs every scenario on target, each as a subtest.
func Run(t *testing.T, target Target) {
	reg := target.Registry
	if reg == nil {
		var err error
		if reg, err = framework.Transports(); err != nil {
			t.Fatal(err)
		}
	}
	s := &suite{target: target, reg: reg}
	if target.Env != nil {
		s.env = target.Env(t)
	}
	for _, sc := range []struct {
		name string
		run  func(*testing.T)
	}{
		{"TypedRoundTrip", s.typedRoundTrip},
		{"FanOut", s.fanOut},
		{"WorkQueue", s.workQueue},
		{"Retry", s.retry},
		{"DelayedRetry", s.delayedRetry},
		{"PoisonAndReplay", s.poisonAndReplay},
		{"Dedup", s.dedup},
		{"GracefulShutdown", s.gracefulShutdown},
		{"ShutdownUnderLoad", s.shutdownUnderLoad},
		{"CommandToItsSingleHandler", s.commandToItsSingleHandler},
		{"EventFanOut", s.eventFanOut},
		{"RequestReply", s.requestReply},
		{"Saga", s.sagas},
	} {
		t.Run(sc.name, sc.run)
	}
}

type suite struct {
	target Target
	reg    *transports.Registry
	env    []string
}

// service is one running App (one instance of a service) and what its
// handlers finished with.
type service struct {
	t         *testing.T
	App       *framework.App
	Transport transports.Transport

	mu       sync.Mutex
	outcomes []framework.Outcome
	changed  chan struct{}
	stopped  bool
}

// newService builds an App for service name from config, exactly as a
// service would (framework.Parse, framework.OpenTransport, framework.New),
// with extra YAML merged over baseConfig through env-style overrides.
func (s *suite) newService(t *testing.T, name string, env ...string) *service {
	t.Helper()
	all := append([]string{
		"MILLRACE_TRANSPORT_KIND=" + s.target.Kind,
		"MILLRACE_SERVICE_NAME=" + name,
	}, s.env...)
	all = append(all, env...)
	cfg, err := framework.Parse([]byte(baseConfig), all, s.reg)
	if err != nil {
		t.Fatal(err)
	}
	logger := testLogger()
	tr, closeTransport, err := framework.OpenTransport(context.Background(), cfg, s.reg, logger)
	if err != nil {
		t.Fatal(err)
	}
	app, err := framework.New(cfg, logger, tr)
	if err != nil {
		closeTransport()
		t.Fatal(err)
	}
	svc := &service{t: t, App: app, Transport: tr, changed: make(chan struct{})}
	app.Observe(framework.ObserverFunc(svc.record))
	t.Cleanup(func() {
		svc.Stop()
		closeTransport()
	})
	return svc
}

func (svc *service) record(o framework.Outcome) {
	svc.mu.Lock()
	svc.outcomes = append(svc.outcomes, o)
	close(svc.changed)
	svc.changed = make(chan struct{})
	svc.mu.Unlock()
}

// Start starts the App.
func (svc *service) Start() {
	svc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	if err := svc.App.Start(ctx); err != nil {
		svc.t.Fatal(err)
	}
}

// Stop stops the App gracefully (once).
func (svc *service) Stop() {
	svc.mu.Lock()
	done := svc.stopped
	svc.stopped = true
	svc.mu.Unlock()
	if done {
		return
	}
	if err := svc.App.Stop(context.Background()); err != nil {
		svc.t.Errorf("stop: %v", err)
	}
}

// Outcomes returns a copy of the outcomes of handler so far.
func (svc *service) Outcomes(handler string) []framework.Outcome {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	var out []framework.Outcome
	for _, o := range svc.outcomes {
		if o.Handler == handler {
			out = append(out, o)
		}
	}
	return out
}

// Handled returns the ids of the messages handler handled successfully, in
// order, duplicates included.
func (svc *service) Handled(handler string) []string {
	var ids []string
	for _, o := range svc.Outcomes(handler) {
		if o.Handled && o.Err == nil {
			ids = append(ids, o.Message.UUID)
		}
	}
	return ids
}

// WaitUntil polls cond until it holds, failing the test after WaitTimeout
// with what it waited for.
func (svc *service) WaitUntil(what string, cond func() bool) {
	svc.t.Helper()
	waitUntil(svc.t, what, cond)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitUntilFor(t, WaitTimeout, what, cond)
}

// waitUntilFor is waitUntil for a wait that may take longer than
// WaitTimeout: a flow of several hops on every message.
func waitUntilFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", d, what)
		}
		<-tick.C
	}
}

// names returns a fresh name per call, so scenarios never share a topic,
// consumer group or poison topic on a broker that keeps them.
func fresh(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

func distinct(ids []string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out)
}

func decode[T any](t *testing.T, m *message.Message) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(m.Payload, &v); err != nil {
		t.Fatalf("decode %T from message %s: %v (payload %q)", v, m.UUID, err, m.Payload)
	}
	return v
}

// testLogger discards the services' logs unless MILLRACE_TEST_LOG is
// "debug" or "info".
func testLogger() *slog.Logger {
	var level slog.Level
	switch os.Getenv("MILLRACE_TEST_LOG") {
	case "debug":
		level = slog.LevelDebug
	case "info":
		level = slog.LevelInfo
	default:
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}
