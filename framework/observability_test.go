package framework_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	amqp091 "github.com/rabbitmq/amqp091-go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/framework"
	"github.com/millrace/millrace/middleware"
	"github.com/millrace/millrace/transports"
	"github.com/millrace/millrace/transports/amqp"
	"github.com/millrace/millrace/transports/memory"
)

// httpc asks the observability listener, with no connection left open.
var httpc = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}

const observed = `
observability:
  addr: 127.0.0.1:0
middleware:
  retry: {max_attempts: 1}
  delayed_retry: {delays: [50ms]}
`

// scrape returns the App's metrics, parsed from /metrics.
func scrape(t *testing.T, app *framework.App) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := httpc.Get("http://" + app.ObservabilityAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// value returns the value of the sample of family name whose labels are
// labels (pairs), or -1.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if got[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return -1
}

func TestMetrics_ScrapeCountsAKnownWorkloadExactly(t *testing.T) {
	app := newApp(t, observed)
	var flaky, once atomic.Int64
	framework.Handle(app, "work", "jobs", func(_ context.Context, j Job) error {
		switch j.Key {
		case "perm":
			return millrace.Permanent(errors.New("cannot ever work"))
		case "flaky":
			if flaky.Add(1) == 1 {
				return errors.New("not yet")
			}
		}
		return nil
	})
	framework.Handle(app, "bare", "chores", func(_ context.Context, j Job) error {
		if once.Add(1) == 1 {
			return errors.New("not yet")
		}
		return nil
	}, framework.WithMiddleware(func(m *framework.MiddlewareConfig) {
		m.DelayedRetry.Enabled, m.Poison.Enabled, m.Dedup.Enabled = false, false, false
	}))
	if err := app.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, j := range []struct{ key, id string }{{"ok", "ok1"}, {"ok", "ok2"}, {"perm", "perm"}, {"dup", "dup"}, {"dup", "dup"}, {"flaky", "flaky"}} {
		if err := app.Publish(ctx, "jobs", Job{Key: j.key}, framework.WithID(j.id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Publish(ctx, "chores", Job{Key: "once"}); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		handler, outcome string
		n                float64
	}{
		{"work", "success", 4}, {"work", "poisoned", 1}, {"work", "duplicate", 1}, {"work", "delayed", 1},
		{"work", "retried", 0}, {"work", "held_back", 0},
		{"bare", "retried", 1}, {"bare", "success", 1},
	}
	deadline := time.Now().Add(10 * time.Second)
	var fams map[string]*dto.MetricFamily
	for {
		fams = scrape(t, app)
		if value(fams, "millrace_handler_messages_total", "handler", "work", "outcome", "success") == 4 &&
			value(fams, "millrace_handler_messages_total", "handler", "bare", "outcome", "success") == 1 {
			break
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, w := range want {
		got := value(fams, "millrace_handler_messages_total", "handler", w.handler, "outcome", w.outcome)
		if got < 0 {
			got = 0
		}
		if got != w.n {
			t.Errorf("millrace_handler_messages_total{handler=%q,outcome=%q} = %v, want %v", w.handler, w.outcome, got, w.n)
		}
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"millrace_handler_received_total", []string{"handler", "work"}, 7},
		{"millrace_handler_duration_seconds", []string{"handler", "work"}, 7},
		{"millrace_handler_in_flight", []string{"handler", "work"}, 0},
		{"millrace_published_messages_total", []string{"topic", "jobs"}, 6},
		{"millrace_published_messages_total", []string{"topic", "millrace.poison"}, 1},
		{"millrace_breaker_state", []string{"breaker", "work"}, 0},
		{"millrace_consumer_backlog", []string{"handler", "work"}, 0},
		{"millrace_poison_messages", []string{"topic", "millrace.poison"}, 1},
	} {
		if got := value(fams, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if fams["go_goroutines"] == nil {
		t.Error("no Go runtime metrics")
	}
}

func TestReadyz_ReadyDegradedAndNotReady(t *testing.T) {
	app := newApp(t, observed+`
  breaker: {consecutive_failures: 1, open_timeout: 1m}
  poison: {enabled: false}
  delayed_retry: {enabled: false}
`)
	framework.Handle(app, "fail", "jobs", func(context.Context, Job) error { return errors.New("downstream down") })
	ready := func() (int, framework.Readiness) {
		t.Helper()
		resp, err := httpc.Get("http://" + app.ObservabilityAddr() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r framework.Readiness
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, r
	}
	if err := app.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code, r := ready(); code != 200 || r.Status != "ready" || r.Handlers["fail"] != "ok" {
		t.Errorf("after start: %d %+v, want 200 ready", code, r)
	}
	resp, err := httpc.Get("http://" + app.ObservabilityAddr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("healthz: %d", resp.StatusCode)
	}
	_ = app.Publish(context.Background(), "jobs", Job{Key: "x"})
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, r := ready()
		if r.Status == "degraded" {
			if code != 200 || len(r.Degraded) != 1 || !strings.Contains(r.Degraded[0], "breaker fail is open") {
				t.Errorf("degraded: %d %+v", code, r)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never degraded: %+v", r)
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = app.Stop(context.Background())
	if r := app.Ready(context.Background()); r.Status != "not_ready" {
		t.Errorf("after stop: %+v", r)
	}
}

func TestObservability_BadAddressFailsTheStartNamingTheKey(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	app := newApp(t, "observability:\n  addr: "+busy.Addr().String()+"\n")
	err = app.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "observability.addr") {
		t.Fatalf("Start = %v, want an error naming observability.addr", err)
	}
	reg, _ := framework.Transports()
	if _, err := framework.Parse([]byte("observability:\n  addr: nowhere\n"), nil, reg); err == nil || !strings.Contains(err.Error(), `"observability.addr": value "nowhere"`) {
		t.Errorf("Parse = %v, want observability.addr refused", err)
	}
}

// transportTarget is a transport the tests below run on: the registry and
// the environment that select it, and a clean-up of what the broker keeps.
type transportTarget struct {
	name string
	// open returns the registry and the MILLRACE_ environment of services
	// on the target, and schedules the deletion of what they leave on the
	// broker (topics, and the services' queues).
	open func(t *testing.T, topics, services []string) (*transports.Registry, []string)
}

var tracingTargets = []transportTarget{
	{"memory", func(t *testing.T, _, _ []string) (*transports.Registry, []string) {
		// Services in one process share one in-memory broker, as services
		// share a real one.
		b, err := memory.New(*memory.DefaultConfig(), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		reg, err := transports.NewRegistry(memory.KindOn(b))
		if err != nil {
			t.Fatal(err)
		}
		return reg, nil
	}},
	{"amqp", func(t *testing.T, topics, services []string) (*transports.Registry, []string) {
		t.Cleanup(func() { deleteAMQP(t, topics, services) })
		reg, err := framework.Transports()
		if err != nil {
			t.Fatal(err)
		}
		return reg, []string{"MILLRACE_TRANSPORT_KIND=amqp", "MILLRACE_TRANSPORT_AMQP_URL=" + rabbitURL}
	}},
}

// rabbitURL is the test RabbitMQ.
const rabbitURL = "amqp://guest:guest@127.0.0.1:5672/"

// deleteAMQP deletes the exchanges of topics, every queue of services on
// them (named "<topic>.<service>.<handler>"), and the services' retained
// poison topics, so that the shared RabbitMQ keeps nothing of a test.
func deleteAMQP(t *testing.T, topics, services []string) {
	conn, err := amqp091.Dial(rabbitURL)
	if err != nil {
		t.Logf("clean up RabbitMQ: %v", err)
		return
	}
	defer conn.Close()
	del := func(f func(*amqp091.Channel) error) {
		// A failed deletion closes its channel: one channel each.
		if ch, err := conn.Channel(); err == nil {
			_ = f(ch)
			_ = ch.Close()
		}
	}
	for _, svc := range services {
		poison := middleware.TopicFor(svc)
		del(func(ch *amqp091.Channel) error {
			_, err := ch.QueueDelete(amqp.RetainedQueue(poison), false, false, false)
			return err
		})
		del(func(ch *amqp091.Channel) error { return ch.ExchangeDelete(poison, false, false) })
		for _, topic := range topics {
			for _, handler := range []string{"place", "bill", "work"} {
				del(func(ch *amqp091.Channel) error {
					_, err := ch.QueueDelete(topic+"."+svc+"."+handler, false, false, false)
					return err
				})
			}
		}
	}
	for _, topic := range topics {
		del(func(ch *amqp091.Channel) error { return ch.ExchangeDelete(topic, false, false) })
	}
}

// One trace links a command's handler in one service to the handler of the
// event it published in another, on every transport: the trace context
// travels in the message's metadata.
func TestTracing_OneTraceLinksTwoHandlersInTwoApps(t *testing.T) {
	for _, target := range tracingTargets {
		t.Run(target.name, func(t *testing.T) {
			run := watermill.NewShortUUID()
			commands, events := "orders.commands."+run, "orders.events."+run
			ordersSvc, billingSvc := "orders-"+run, "billing-"+run
			reg, env := target.open(t, []string{commands, events}, []string{ordersSvc, billingSvc})
			spans := tracetest.NewInMemoryExporter()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
			t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

			newService := func(name string) *framework.App {
				cfg, err := framework.Parse(nil, append([]string{"MILLRACE_SERVICE_NAME=" + name}, env...), reg)
				if err != nil {
					t.Fatal(err)
				}
				logger := framework.NewLogger(cfg, io.Discard)
				tr, cleanup, err := framework.OpenTransport(context.Background(), cfg, reg, logger)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(cleanup)
				app, err := framework.New(cfg, logger, tr)
				if err != nil {
					t.Fatal(err)
				}
				app.SetTracerProvider(tp)
				t.Cleanup(func() { _ = app.Stop(context.Background()) })
				return app
			}
			orders, billing := newService(ordersSvc), newService(billingSvc)
			done := make(chan struct{})
			framework.Handle(orders, "place", commands, func(ctx context.Context, j Job) error {
				return orders.Publish(ctx, events, OrderPlaced{OrderID: j.Key})
			})
			framework.Handle(billing, "bill", events, func(context.Context, OrderPlaced) error {
				close(done)
				return nil
			})
			for _, app := range []*framework.App{orders, billing} {
				if err := app.Start(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			// A client with no trace of its own starts the flow.
			if err := orders.PublishMessage(context.Background(), commands, message.NewMessage("cmd-"+run, []byte(`{"key":"o-1"}`))); err != nil {
				t.Fatal(err)
			}
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("the event was not handled")
			}
			_ = billing.Stop(context.Background())
			_ = orders.Stop(context.Background())
			byName := map[string]tracetest.SpanStub{}
			for _, s := range spans.GetSpans() {
				byName[s.Name] = s
			}
			place, publish, bill := byName[commands+" process"], byName[events+" publish"], byName[events+" process"]
			if !place.SpanContext.IsValid() || !publish.SpanContext.IsValid() || !bill.SpanContext.IsValid() {
				t.Fatalf("spans: %v", names(spans.GetSpans()))
			}
			if bill.SpanContext.TraceID() != place.SpanContext.TraceID() {
				t.Errorf("the two handlers are in two traces: %s and %s", place.SpanContext.TraceID(), bill.SpanContext.TraceID())
			}
			if publish.Parent.SpanID() != place.SpanContext.SpanID() || bill.Parent.SpanID() != publish.SpanContext.SpanID() {
				t.Errorf("want place -> publish -> bill, got parents %s, %s", publish.Parent.SpanID(), bill.Parent.SpanID())
			}
			if bill.SpanKind != trace.SpanKindConsumer || publish.SpanKind != trace.SpanKindProducer {
				t.Errorf("kinds %v %v", bill.SpanKind, publish.SpanKind)
			}
		})
	}
}

func names(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}
