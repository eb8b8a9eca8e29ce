package framework_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	wmw "github.com/ThreeDotsLabs/watermill/message/router/middleware"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/millrace/millrace/framework"
	"github.com/millrace/millrace/transports/memory"
)

// BenchmarkStack measures the throughput of a no-op handler on the in-memory
// transport, in one run: Watermill's router without middleware, Watermill's
// router with its own Recoverer, CorrelationID, PoisonQueue and Retry, and
// millrace's App with its default stack (in-memory dedup, breaker, retries,
// delayed retries, poison queue, timeout; throttle off) with metrics on
// (the default) and off, each with tracing off (the default: no exporter)
// and on (every message sampled and recorded). The App's four runs are
// interleaved over MILLRACE_BENCH_ROUNDS rounds (default 3), so that a
// machine's load changing midway weighs on each alike, and the run ends by
// printing each one's median beside the anchor, metrics and tracing off:
// what metrics and tracing cost.
//
//	go test -run x -bench BenchmarkStack -benchtime 200000x ./framework/
func BenchmarkStack(b *testing.B) {
	b.Run("watermill-router-bare", func(b *testing.B) { benchRouter(b, false) })
	b.Run("watermill-router-4-middleware", func(b *testing.B) { benchRouter(b, true) })

	type variant struct {
		name    string
		env     []string
		traced  bool
		results []float64
	}
	off := []string{"MILLRACE_OBSERVABILITY_METRICS=false"}
	variants := []*variant{
		{name: "millrace-default-stack/metrics=off/tracing=off", env: off},
		{name: "millrace-default-stack/metrics=on/tracing=off"},
		{name: "millrace-default-stack/metrics=off/tracing=on", env: off, traced: true},
		{name: "millrace-default-stack/metrics=on/tracing=on", traced: true},
	}
	rounds := 3
	if v, err := strconv.Atoi(os.Getenv("MILLRACE_BENCH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	for range rounds {
		for _, v := range variants {
			var rate float64
			b.Run(v.name, func(b *testing.B) { rate = benchApp(b, v.env, v.traced) })
			if rate > 0 {
				v.results = append(v.results, rate)
			}
		}
	}
	median := func(xs []float64) float64 {
		if len(xs) == 0 {
			return 0
		}
		xs = slices.Sorted(slices.Values(xs))
		return xs[len(xs)/2]
	}
	anchor := median(variants[0].results)
	if anchor == 0 {
		return
	}
	var report strings.Builder
	fmt.Fprintf(&report, "\nmillrace default stack, median of %d rounds, against metrics and tracing off (%.0f msg/s):\n", rounds, anchor)
	for _, v := range variants[1:] {
		m := median(v.results)
		fmt.Fprintf(&report, "  %-48s %9.0f msg/s  %+6.1f%%\n", v.name, m, (m/anchor-1)*100)
	}
	fmt.Print(report.String())
}

func publishAll(b *testing.B, pub message.Publisher, n int) {
	b.Helper()
	payload := []byte(`{"order_id":"o-1","total":42}`)
	for i := range n {
		if err := pub.Publish("bench", message.NewMessage(fmt.Sprint("m-", i), payload)); err != nil {
			b.Fatal(err)
		}
	}
}

func waitCount(b *testing.B, n *atomic.Int64, want int) {
	b.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for n.Load() < int64(want) {
		if time.Now().After(deadline) {
			b.Fatalf("handled %d of %d", n.Load(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

func benchRouter(b *testing.B, withMiddleware bool) {
	broker, err := memory.New(*memory.DefaultConfig(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer broker.Close()
	router, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	if err != nil {
		b.Fatal(err)
	}
	if withMiddleware {
		pq, err := wmw.PoisonQueue(broker, "bench.poison")
		if err != nil {
			b.Fatal(err)
		}
		router.AddMiddleware(wmw.Recoverer, wmw.CorrelationID, pq,
			wmw.Retry{MaxRetries: 3, InitialInterval: 100 * time.Millisecond, Multiplier: 2, MaxInterval: 10 * time.Second}.Middleware)
	}
	var handled atomic.Int64
	router.AddConsumerHandler("noop", "bench", broker.Subscriber("bench.noop"), func(*message.Message) error {
		handled.Add(1)
		return nil
	})
	go func() { _ = router.Run(context.Background()) }()
	<-router.Running()
	defer router.Close()

	b.ResetTimer()
	start := time.Now()
	publishAll(b, broker, b.N)
	waitCount(b, &handled, b.N)
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
}

// benchEnv lets a run switch parts of the stack off to see what each costs,
// e.g. MILLRACE_BENCH_ENV="MILLRACE_MIDDLEWARE_TIMEOUT=0s".
var benchEnv = strings.Fields(os.Getenv("MILLRACE_BENCH_ENV"))

// benchApp measures the App with its default stack, changed by env, and
// returns the messages handled per second.
func benchApp(b *testing.B, env []string, traced bool) float64 {
	reg, _ := framework.Transports()
	cfg, err := framework.Parse(nil, append(slices.Clone(benchEnv), env...), reg)
	if err != nil {
		b.Fatal(err)
	}
	logger := framework.NewLogger(cfg, io.Discard)
	tr, cleanup, err := framework.OpenTransport(context.Background(), cfg, reg, logger)
	if err != nil {
		b.Fatal(err)
	}
	defer cleanup()
	app, err := framework.New(cfg, logger, tr)
	if err != nil {
		b.Fatal(err)
	}
	if traced {
		// Every message sampled and recorded; exported nowhere.
		tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
		defer tp.Shutdown(context.Background())
		app.SetTracerProvider(tp)
	}
	var handled atomic.Int64
	framework.HandleRaw(app, "noop", "bench", func(*message.Message) ([]*message.Message, error) {
		handled.Add(1)
		return nil, nil
	})
	if err := app.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer app.Stop(context.Background())

	b.ResetTimer()
	start := time.Now()
	publishAll(b, app.Publisher(), b.N)
	waitCount(b, &handled, b.N)
	rate := float64(b.N) / time.Since(start).Seconds()
	b.ReportMetric(rate, "msg/s")
	return rate
}
