package projection

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/millrace/millrace/cqrs/eventstore"
)

// collector exports a projector's metrics, labelled with its projection:
//
//	millrace_projection_lag_seconds        gauge: how long ago the last event
//	                                       applied was recorded, while events
//	                                       wait; 0 when caught up
//	millrace_projection_applied_total      counter: events applied to the live
//	                                       generation
//	millrace_projection_apply_lag_seconds  histogram: from an event's record
//	                                       to its batch's commit
type collector struct {
	p       *Projector
	lag     *prometheus.Desc
	total   *prometheus.Desc
	latency prometheus.Histogram
}

func newCollector(name string, p *Projector) *collector {
	labels := prometheus.Labels{"projection": name}
	return &collector{
		p:     p,
		lag:   prometheus.NewDesc("millrace_projection_lag_seconds", "How long ago the last event the projection applied was recorded, while events wait for it; 0 when it has caught up.", nil, labels),
		total: prometheus.NewDesc("millrace_projection_applied_total", "Events the projection applied to its live generation.", nil, labels),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:        "millrace_projection_apply_lag_seconds",
			Help:        "Time from an event's record in the store to the commit of the projection batch that applied it.",
			ConstLabels: labels,
			Buckets:     []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
	}
}

func (c *collector) applied(events []eventstore.Event) {
	now := time.Now()
	for _, e := range events {
		c.latency.Observe(max(now.Sub(e.RecordedAt).Seconds(), 0))
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.lag
	ch <- c.total
	c.latency.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.p.Stats()
	lag := 0.0
	if !s.CaughtUp && !s.LastRecordedAt.IsZero() {
		lag = time.Since(s.LastRecordedAt).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, lag)
	ch <- prometheus.MustNewConstMetric(c.total, prometheus.CounterValue, float64(s.Applied))
	c.latency.Collect(ch)
}
