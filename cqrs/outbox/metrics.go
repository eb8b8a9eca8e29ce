package outbox

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// collector exports the outbox's backlog and the relay's lag and work at
// every scrape of the App's /metrics.
type collector struct{ o *Outbox }

var (
	backlogDesc = prometheus.NewDesc("millrace_outbox_backlog",
		"Committed messages in the outbox not relayed yet.", []string{"table"}, nil)
	lagDesc = prometheus.NewDesc("millrace_outbox_relay_lag_seconds",
		"Age of the oldest message in the outbox not relayed yet (0 when none waits).", []string{"table"}, nil)
	relayedDesc = prometheus.NewDesc("millrace_outbox_relayed_total",
		"Messages this instance's relay published.", []string{"table"}, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- backlogDesc
	ch <- lagDesc
	ch <- relayedDesc
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	table := c.o.cfg.TablePrefix + "outbox"
	ch <- prometheus.MustNewConstMetric(relayedDesc, prometheus.CounterValue, float64(c.o.stats.relayed.Load()), table)
	ctx, cancel := context.WithTimeout(context.Background(), min(c.o.cfg.CallTimeout, 3*time.Second))
	defer cancel()
	n, age, err := c.o.Backlog(ctx)
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(backlogDesc, prometheus.GaugeValue, float64(n), table)
	ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, age.Seconds(), table)
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
