package cqrs_test

import (
	"context"
	"io"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wcqrs "github.com/ThreeDotsLabs/watermill/components/cqrs"
	"github.com/ThreeDotsLabs/watermill/message"
	wmw "github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/millrace/millrace/cqrs"
	"github.com/millrace/millrace/framework"
)

// BenchmarkBus measures send+handle and publish+handle in one run: raw
// Watermill components/cqrs on its GoChannel pub/sub, bare and with
// Watermill's Recoverer, CorrelationID, PoisonQueue and Retry, against
// millrace's buses on the in-memory transport with the full default
// middleware stack (dedup, breaker, retries, delayed retries, poison,
// timeout).
//
//	go test -run '^$' -bench BenchmarkBus -benchtime 100000x ./cqrs/
func BenchmarkBus(b *testing.B) {
	for _, kind := range []string{"send", "publish"} {
		b.Run(kind+"/watermill-cqrs-bare", func(b *testing.B) { benchWatermill(b, kind, false) })
		b.Run(kind+"/watermill-cqrs-4-middleware", func(b *testing.B) { benchWatermill(b, kind, true) })
		b.Run(kind+"/millrace-default-stack", func(b *testing.B) { benchMillrace(b, kind) })
	}
}

func benchWatermill(b *testing.B, kind string, withMiddleware bool) {
	pubsub := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 1024}, watermill.NopLogger{})
	defer pubsub.Close()
	router, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	if err != nil {
		b.Fatal(err)
	}
	if withMiddleware {
		pq, err := wmw.PoisonQueue(pubsub, "bench.poison")
		if err != nil {
			b.Fatal(err)
		}
		router.AddMiddleware(wmw.Recoverer, wmw.CorrelationID, pq,
			wmw.Retry{MaxRetries: 3, InitialInterval: 100 * time.Millisecond, Multiplier: 2, MaxInterval: 10 * time.Second}.Middleware)
	}
	var handled atomic.Int64
	marshaler := wcqrs.JSONMarshaler{}
	topic := func(name string) string { return name }
	subscriber := func(string) (message.Subscriber, error) { return pubsub, nil }
	var send func(ctx context.Context, id string) error
	switch kind {
	case "send":
		bus, err := wcqrs.NewCommandBusWithConfig(pubsub, wcqrs.CommandBusConfig{
			GeneratePublishTopic: func(p wcqrs.CommandBusGeneratePublishTopicParams) (string, error) { return topic(p.CommandName), nil },
			Marshaler:            marshaler,
		})
		if err != nil {
			b.Fatal(err)
		}
		proc, err := wcqrs.NewCommandProcessorWithConfig(router, wcqrs.CommandProcessorConfig{
			GenerateSubscribeTopic: func(p wcqrs.CommandProcessorGenerateSubscribeTopicParams) (string, error) {
				return topic(p.CommandName), nil
			},
			SubscriberConstructor: func(p wcqrs.CommandProcessorSubscriberConstructorParams) (message.Subscriber, error) {
				return subscriber(p.HandlerName)
			},
			Marshaler: marshaler,
		})
		if err != nil {
			b.Fatal(err)
		}
		if err := proc.AddHandlers(wcqrs.NewCommandHandler("place", func(context.Context, *PlaceOrder) error {
			handled.Add(1)
			return nil
		})); err != nil {
			b.Fatal(err)
		}
		send = func(ctx context.Context, id string) error { return bus.Send(ctx, &PlaceOrder{ID: id, Total: 42}) }
	case "publish":
		bus, err := wcqrs.NewEventBusWithConfig(pubsub, wcqrs.EventBusConfig{
			GeneratePublishTopic: func(p wcqrs.GenerateEventPublishTopicParams) (string, error) { return topic(p.EventName), nil },
			Marshaler:            marshaler,
		})
		if err != nil {
			b.Fatal(err)
		}
		proc, err := wcqrs.NewEventProcessorWithConfig(router, wcqrs.EventProcessorConfig{
			GenerateSubscribeTopic: func(p wcqrs.EventProcessorGenerateSubscribeTopicParams) (string, error) {
				return topic(p.EventName), nil
			},
			SubscriberConstructor: func(p wcqrs.EventProcessorSubscriberConstructorParams) (message.Subscriber, error) {
				return subscriber(p.HandlerName)
			},
			Marshaler: marshaler,
		})
		if err != nil {
			b.Fatal(err)
		}
		if err := proc.AddHandlers(wcqrs.NewEventHandler("notify", func(context.Context, *OrderPlaced) error {
			handled.Add(1)
			return nil
		})); err != nil {
			b.Fatal(err)
		}
		send = func(ctx context.Context, id string) error { return bus.Publish(ctx, &OrderPlaced{ID: id}) }
	}
	go func() { _ = router.Run(context.Background()) }()
	<-router.Running()
	defer router.Close()
	measure(b, &handled, send)
}

func benchMillrace(b *testing.B, kind string) {
	reg, _ := framework.Transports()
	cfg, err := framework.Parse(nil, benchEnv(), reg)
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
	bus := cqrs.New(app)
	var handled atomic.Int64
	var send func(ctx context.Context, id string) error
	switch kind {
	case "send":
		cqrs.HandleCommand(bus, func(context.Context, PlaceOrder) error { handled.Add(1); return nil })
		send = func(ctx context.Context, id string) error { return cqrs.Send(ctx, bus, PlaceOrder{ID: id, Total: 42}) }
	case "publish":
		cqrs.HandleEvent(bus, "notify", func(context.Context, OrderPlaced) error { handled.Add(1); return nil })
		send = func(ctx context.Context, id string) error { return cqrs.Publish(ctx, bus, OrderPlaced{ID: id}) }
	}
	if err := app.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer app.Stop(context.Background())
	measure(b, &handled, send)
}

// measure sends b.N messages and reports msg/s from the first send to the
// last one handled.
func measure(b *testing.B, handled *atomic.Int64, send func(context.Context, string) error) {
	b.Helper()
	ids := make([]string, b.N)
	for i := range ids {
		ids[i] = "o-" + itoa(i)
	}
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for _, id := range ids {
		if err := send(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Minute)
	for handled.Load() < int64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("handled %d of %d", handled.Load(), b.N)
		}
		time.Sleep(100 * time.Microsecond)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
}

// BenchmarkRequestReply measures request/reply round trips through the
// full default middleware stack: the latency of one round trip (p50, p99)
// with one caller at a time, and round trips per second with 16 callers
// asking at once, on the in-memory transport, on RabbitMQ and on PostgreSQL
// (the local servers, as the transports' defaults find them).
//
//	go test -run '^$' -bench BenchmarkRequestReply -benchtime 5000x ./cqrs/
func BenchmarkRequestReply(b *testing.B) {
	kinds := []struct {
		name string
		env  []string
	}{
		{"memory", nil},
		{"amqp", []string{"MILLRACE_TRANSPORT_KIND=amqp"}},
		{"postgres", []string{"MILLRACE_TRANSPORT_KIND=postgres", "MILLRACE_TRANSPORT_POSTGRES_TABLE_PREFIX=bench_rr_"}},
		// A round trip waits for two polls: a shorter poll_interval buys
		// latency with queries.
		{"postgres-poll-5ms", []string{"MILLRACE_TRANSPORT_KIND=postgres", "MILLRACE_TRANSPORT_POSTGRES_TABLE_PREFIX=bench_rr_", "MILLRACE_TRANSPORT_POSTGRES_POLL_INTERVAL=5ms"}},
	}
	for _, k := range kinds {
		for _, callers := range []int{1, 16} {
			b.Run(k.name+"/"+itoa(callers)+"-callers", func(b *testing.B) { benchRequestReply(b, k.env, callers) })
		}
	}
}

func benchRequestReply(b *testing.B, env []string, callers int) {
	reg, _ := framework.Transports()
	newApp := func(name string) (*framework.App, *cqrs.Bus) {
		cfg, err := framework.Parse(nil, append(slices.Clone(env), "MILLRACE_SERVICE_NAME="+name), reg)
		if err != nil {
			b.Fatal(err)
		}
		logger := framework.NewLogger(cfg, io.Discard)
		tr, cleanup, err := framework.OpenTransport(context.Background(), cfg, reg, logger)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(cleanup)
		app, err := framework.New(cfg, logger, tr)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = app.Stop(context.Background()) })
		return app, cqrs.New(app)
	}
	app, bus := newApp("cqrs-bench-rr") // not "bench": cmd/bench checks that it leaves no "bench." queue
	cqrs.HandleCommandWithReply(bus, func(_ context.Context, c ReserveTable) (TableReserved, error) {
		return TableReserved{Table: c.ID}, nil
	}, framework.Concurrency(4))
	if err := app.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	b.ResetTimer()
	start := time.Now()
	done := make(chan error, callers)
	for range callers {
		go func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					done <- nil
					return
				}
				t0 := time.Now()
				if _, err := cqrs.Request[TableReserved](context.Background(), bus, ReserveTable{ID: itoa(int(i))}); err != nil {
					done <- err
					return
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	for range callers {
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "round-trips/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

func itoa(i int) string {
	var buf [20]byte
	n := len(buf)
	for {
		n--
		buf[n] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			break
		}
	}
	return string(buf[n:])
}

// benchEnv lets a run switch parts of the stack off, as in the framework's
// stack benchmark: MILLRACE_BENCH_ENV="MILLRACE_MIDDLEWARE_DEDUP_ENABLED=false".
func benchEnv() []string { return nil }
