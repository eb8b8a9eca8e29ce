package framework_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
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
// delayed retries, poison queue, timeout; throttle off), with its metrics
// (the default) and without, and with every message traced.
//
//	go test -run x -bench BenchmarkStack -benchtime 200000x ./framework/
func BenchmarkStack(b *testing.B) {
	b.Run("watermill-router-bare", func(b *testing.B) { benchRouter(b, false) })
	b.Run("watermill-router-4-middleware", func(b *testing.B) { benchRouter(b, true) })
	b.Run("millrace-default-stack", func(b *testing.B) { benchApp(b, nil, false) })
	b.Run("millrace-default-stack-no-metrics", func(b *testing.B) {
		benchApp(b, []string{"MILLRACE_OBSERVABILITY_METRICS=false"}, false)
	})
	b.Run("millrace-default-stack-traced", func(b *testing.B) { benchApp(b, nil, true) })
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

func benchApp(b *testing.B, env []string, traced bool) {
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
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
}
