package framework_test

import (
	"context"
	"fmt"
	"io"

	"github.com/millrace/millrace/framework"
)

type Greeting struct {
	Name string `json:"name"`
}

// A typed handler consumes Greeting messages and publishes another message;
// here on the in-memory transport that an empty config selects.
func ExampleHandle() {
	ctx := context.Background()
	reg, _ := framework.Transports()
	cfg, err := framework.Parse(nil, nil, reg) // empty config: defaults
	if err != nil {
		panic(err)
	}
	logger := framework.NewLogger(cfg, io.Discard)
	tr, cleanup, err := framework.OpenTransport(ctx, cfg, reg, logger)
	if err != nil {
		panic(err)
	}
	defer cleanup()
	app, err := framework.New(cfg, logger, tr)
	if err != nil {
		panic(err)
	}

	done := make(chan struct{})
	framework.Handle(app, "greeter", "greetings", func(ctx context.Context, g Greeting) error {
		fmt.Println("hello,", g.Name)
		return app.Publish(ctx, "greeted", g)
	})
	framework.Handle(app, "audit", "greeted", func(ctx context.Context, g Greeting) error {
		fmt.Println("audited greeting of", g.Name)
		close(done)
		return nil
	})

	if err := app.Start(ctx); err != nil {
		panic(err)
	}
	if err := app.Publish(ctx, "greetings", Greeting{Name: "Ada"}); err != nil {
		panic(err)
	}
	<-done
	if err := app.Stop(ctx); err != nil {
		panic(err)
	}
	// Output:
	// hello, Ada
	// audited greeting of Ada
}

// Load reads one YAML file plus MILLRACE_* environment overrides; every key
// has a default, and secrets are redacted when the config is printed.
func ExampleParse() {
	reg, _ := framework.Transports()
	cfg, err := framework.Parse([]byte("service:\n  name: shop\n"), []string{"MILLRACE_HANDLERS_CONCURRENCY=4"}, reg)
	if err != nil {
		panic(err)
	}
	fmt.Print(cfg)

	_, err = framework.Parse([]byte("transport:\n  kind: carrier-pigeon\n"), nil, reg)
	fmt.Println(err)
	// Output:
	// service:
	//   name: shop
	// log:
	//   level: info
	//   format: text
	// transport:
	//   kind: memory
	//   memory:
	//     redelivery_delay: 100ms
	//     max_redelivery_delay: 10s
	//     retention: 10000
	// handlers:
	//   concurrency: 4
	//   max_in_flight: 0
	// middleware:
	//   timeout: 1m
	//   retry:
	//     max_attempts: 3
	//     initial_interval: 100ms
	//     multiplier: 2
	//     max_interval: 10s
	//     jitter: 0.2
	//   delayed_retry:
	//     enabled: true
	//     delays: [10s, 1m, 5m]
	//   poison:
	//     enabled: true
	//     topic:
	//   breaker:
	//     enabled: true
	//     name:
	//     consecutive_failures: 5
	//     failure_ratio: 0
	//     min_requests: 20
	//     interval: 1m
	//     open_timeout: 30s
	//     half_open_requests: 1
	//   throttle:
	//     rate: 0
	//     name:
	//     burst: 1
	//   dedup:
	//     enabled: true
	//     store: memory
	//     dsn:
	//     table: millrace_dedup
	//     max_keys: 100000
	//     connect_timeout: 10s
	//     lease: 30s
	//     ttl: 24h
	//     fail_open: false
	//     key:
	// shutdown:
	//   timeout: 30s
	//   cancel_grace: 5s
	// observability:
	//   addr:
	//   metrics: true
	//   tracing:
	//     endpoint:
	//     protocol: http
	//     sample_ratio: 1
	//   readiness:
	//     max_backlog: 0
	//     max_poison: 0
	// config key "transport.kind": value "carrier-pigeon": unknown transport kind; known kinds: amqp, kafka, memory, mysql, postgres
}
