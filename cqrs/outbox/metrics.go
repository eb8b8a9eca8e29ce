package outbox

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// collector exports the outbox's backlog and the relay's lag and work at
// every scrape of the App's /metrics. Its descriptions carry the table as a
// constant label, so the outboxes of one App (two databases, two prefixes)
// each register their own.
type collector struct {
	o                     *Outbox
	backlog, lag, relayed *prometheus.Desc
}

func newCollector(o *Outbox) collector {
	table := prometheus.Labels{"table": o.cfg.TablePrefix + "outbox"}
	return collector{
		o: o,
		backlog: prometheus.NewDesc("millrace_outbox_backlog",
			"Committed messages in the outbox not relayed yet.", nil, table),
		lag: prometheus.NewDesc("millrace_outbox_relay_lag_seconds",
			"Age of the oldest message in the outbox not relayed yet (0 when none waits).", nil, table),
		relayed: prometheus.NewDesc("millrace_outbox_relayed_total",
			"Messages this instance's relay published.", nil, table),
	}
}

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.backlog
	ch <- c.lag
	ch <- c.relayed
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.relayed, prometheus.CounterValue, float64(c.o.stats.relayed.Load()))
	ctx, cancel := context.WithTimeout(context.Background(), min(c.o.cfg.CallTimeout, 3*time.Second))
	defer cancel()
	n, age, err := c.o.Backlog(ctx)
	if err != nil {
		// The scrape goes on without the two gauges; say why, at most
		// once a minute.
		if now := time.Now().UnixNano(); now-c.o.stats.scrapeWarned.Load() > int64(time.Minute) {
			c.o.stats.scrapeWarned.Store(now)
			c.o.app.Logger().Warn("outbox metrics: backlog query failed; millrace_outbox_backlog and millrace_outbox_relay_lag_seconds are left out of this scrape", "error", err)
		}
		return
	}
	ch <- prometheus.MustNewConstMetric(c.backlog, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, age.Seconds())
}

// Backlog returns how many messages wait in the outbox, committed and not
// relayed yet, and how long the oldest has waited (0 when none waits), by
// the database's clock.
func (o *Outbox) Backlog(ctx context.Context) (int64, time.Duration, error) {
	var n int64
	var age float64
	if err := o.db.QueryRowContext(ctx, o.stmt.backlog).Scan(&n, &age); err != nil {
		return 0, 0, o.timedOut(ctx, "backlog", err)
	}
	return n, time.Duration(age * float64(time.Second)), nil
}
