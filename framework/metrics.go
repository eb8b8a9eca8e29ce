package framework

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/sony/gobreaker/v2"

	"github.com/millrace/millrace/transports"
)

// The outcomes of a delivery, as metrics label them (see [Outcome.Result]).
const (
	ResultSuccess   = "success"   // the handler succeeded; acked
	ResultRetried   = "retried"   // it failed; nacked, so the transport delivers it again
	ResultDelayed   = "delayed"   // scheduled for a delayed retry; acked
	ResultPoisoned  = "poisoned"  // sent to the poison queue; acked
	ResultDuplicate = "duplicate" // its idempotency key was done already; acked
	ResultHeldBack  = "held_back" // held back (breaker open, duplicate in flight, store down, shutdown); nacked
	ResultSkipped   = "skipped"   // of a type the handler does not take; acked
)

// results are the labels of the outcomes, by index.
var results = [...]string{ResultSuccess, ResultRetried, ResultDelayed, ResultPoisoned, ResultDuplicate, ResultHeldBack, ResultSkipped}

// Indexes into results.
const (
	resultSuccess = iota
	resultRetried
	resultDelayed
	resultPoisoned
	resultDuplicate
	resultHeldBack
	resultSkipped
)

// metrics are an App's Prometheus metrics, in a registry of its own. Every
// label child the hot path uses is resolved before the first message.
type metrics struct {
	reg *prometheus.Registry

	received  *prometheus.CounterVec
	messages  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	inFlight  *prometheus.GaugeVec
	published *prometheus.CounterVec
	pubErrors *prometheus.CounterVec
	breakers  *prometheus.GaugeVec
	throttled *prometheus.CounterVec

	mu     sync.Mutex                               // adding topics
	topics atomic.Pointer[map[string]*topicMetrics] // copied on write
}

// handlerMetrics are one handler's resolved children.
type handlerMetrics struct {
	received prometheus.Counter
	results  [len(results)]prometheus.Counter
	duration prometheus.Observer
	inFlight prometheus.Gauge
}

type topicMetrics struct {
	published, errors prometheus.Counter
}

func newMetrics(a *App) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "millrace_handler_received_total", Help: "Messages a handler received.",
		}, []string{"handler"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "millrace_handler_messages_total", Help: "Messages a handler finished with, by outcome: success, retried, delayed, poisoned, duplicate, held_back, skipped.",
		}, []string{"handler", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "millrace_handler_duration_seconds", Help: "How long a handler and its middleware took per message.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"handler"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "millrace_handler_in_flight", Help: "Messages a handler is handling now.",
		}, []string{"handler"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "millrace_published_messages_total", Help: "Messages published, by topic.",
		}, []string{"topic"}),
		pubErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "millrace_publish_errors_total", Help: "Messages whose publishing failed, by topic.",
		}, []string{"topic"}),
		breakers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "millrace_breaker_state", Help: "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
		}, []string{"breaker"}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "millrace_throttle_wait_seconds_total", Help: "Time messages waited for the throttle, by throttle.",
		}, []string{"throttle"}),
	}
	empty := map[string]*topicMetrics{}
	m.topics.Store(&empty)
	m.reg.MustRegister(m.received, m.messages, m.duration, m.inFlight, m.published, m.pubErrors, m.breakers, m.throttled,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&backlogCollector{a: a})
	return m
}

// RegisterMetrics adds collectors to the App's Prometheus registry, which
// /metrics serves: for the layers above the App (the outbox's backlog, saga
// states) to export their own. It does nothing when metrics are off
// (observability.metrics: false), and reports a collector that clashes
// with one registered already.
func (a *App) RegisterMetrics(cs ...prometheus.Collector) error {
	if a.metrics == nil {
		return nil
	}
	for _, c := range cs {
		if err := a.metrics.reg.Register(c); err != nil {
			return fmt.Errorf("register metrics: %w", err)
		}
	}
	return nil
}

// forHandler resolves handler's children; nil metrics give nil.
func (m *metrics) forHandler(handler string) *handlerMetrics {
	if m == nil {
		return nil
	}
	hm := &handlerMetrics{
		received: m.received.WithLabelValues(handler),
		duration: m.duration.WithLabelValues(handler),
		inFlight: m.inFlight.WithLabelValues(handler),
	}
	for i, r := range results {
		hm.results[i] = m.messages.WithLabelValues(handler, r)
	}
	return hm
}

// topic returns topic's counters, resolving them on first use.
func (m *metrics) topic(topic string) *topicMetrics {
	if tm := (*m.topics.Load())[topic]; tm != nil {
		return tm
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.topics.Load()
	if tm := old[topic]; tm != nil {
		return tm
	}
	tm := &topicMetrics{published: m.published.WithLabelValues(topic), errors: m.pubErrors.WithLabelValues(topic)}
	next := make(map[string]*topicMetrics, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[topic] = tm
	m.topics.Store(&next)
	return tm
}

// countPublish counts n messages published to topic, or failed to.
func (m *metrics) countPublish(topic string, n int, err error) {
	if m == nil {
		return
	}
	tm := m.topic(topic)
	if err != nil {
		tm.errors.Add(float64(n))
		return
	}
	tm.published.Add(float64(n))
}

// breakerState records a breaker's state.
func (m *metrics) breakerState(name string, s gobreaker.State) {
	if m == nil {
		return
	}
	v := 0.0
	switch s {
	case gobreaker.StateHalfOpen:
		v = 1
	case gobreaker.StateOpen:
		v = 2
	}
	m.breakers.WithLabelValues(name).Set(v)
}

// throttleWait counts a message's wait for throttle name.
func (m *metrics) throttleWait(name string) func(time.Duration) {
	if m == nil {
		return nil
	}
	c := m.throttled.WithLabelValues(name)
	return func(d time.Duration) { c.Add(d.Seconds()) }
}

// backlogCollector asks the transport, at every scrape, for each handler's
// backlog and the poison topics' sizes, where it can tell them.
type backlogCollector struct {
	a       *App
	failing atomic.Bool // the last scrape could not read some size: logged once per streak
}

var (
	backlogDesc = prometheus.NewDesc("millrace_consumer_backlog",
		"Messages waiting for a handler (Kafka lag, RabbitMQ queue depth, SQL rows behind the group's offset, memory pending), where the transport can tell.",
		[]string{"handler"}, nil)
	poisonDesc = prometheus.NewDesc("millrace_poison_messages",
		"Messages in a poison topic, where the transport can tell.",
		[]string{"service", "topic"}, nil)
)

// scrapeTimeout bounds what a scrape asks the broker.
const scrapeTimeout = 3 * time.Second

func (c *backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- backlogDesc
	ch <- poisonDesc
}

func (c *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	b, ok := c.a.transport.(transports.Backlogger)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	var failed *size
	for _, s := range c.a.sizes(ctx, b) {
		if s.err != nil {
			if failed == nil {
				failed = &s
			}
			continue
		}
		if s.poison {
			ch <- prometheus.MustNewConstMetric(poisonDesc, prometheus.GaugeValue, float64(s.n), c.a.cfg.Service.Name, s.topic)
		} else {
			ch <- prometheus.MustNewConstMetric(backlogDesc, prometheus.GaugeValue, float64(s.n), s.handler)
		}
	}
	switch {
	case failed != nil && !c.failing.Swap(true):
		c.a.logger.Warn("metrics: cannot read backlog sizes; they are left out of /metrics until they can be read (logged once until then)",
			slog.String("topic", failed.topic), slog.String("handler", failed.handler), slog.Any("error", failed.err))
	case failed == nil && c.failing.Swap(false):
		c.a.logger.Info("metrics: backlog sizes can be read again")
	}
}

// size is one backlog or poison topic size the transport told.
type size struct {
	handler, topic string
	poison         bool
	n              int64
	err            error
}

// sizes asks b for every handler's backlog and every poison topic's size.
func (a *App) sizes(ctx context.Context, b transports.Backlogger) []size {
	var out []size
	seen := map[string]bool{}
	for _, h := range a.handlers {
		if h.ephemeral {
			continue
		}
		n, err := b.Backlog(ctx, h.topic, h.group)
		out = append(out, size{handler: h.name, topic: h.topic, n: n, err: err})
		if !h.mw.Poison.Enabled {
			continue
		}
		if pt := a.poisonTopic(h.mw.Poison); !seen[pt] {
			seen[pt] = true
			n, err := b.Backlog(ctx, pt, "")
			out = append(out, size{topic: pt, poison: true, n: n, err: err})
		}
	}
	return out
}
