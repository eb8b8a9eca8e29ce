// Command quickstart is the smallest millrace service: a command handler
// that accepts orders and publishes an OrderPlaced event, consumed by a
// second handler that notifies the customer. It runs on the transport that
// config chooses — the in-memory one by default — publishes a few orders,
// prints the flow, and exits once every order was notified (or on Ctrl-C).
//
//	go run ./examples/quickstart
//	go run ./examples/quickstart -orders 10 -config service.yaml
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"github.com/millrace/millrace/examples/quickstart/orders"
	"github.com/millrace/millrace/framework"
)

func main() {
	configPath := flag.String("config", "", "YAML config file (default: $MILLRACE_CONFIG, or none: in-memory transport)")
	count := flag.Int("orders", 3, "how many orders to place")
	flag.Parse()
	if err := run(*configPath, *count, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

// run places count orders and returns once every one was notified, or on
// SIGINT/SIGTERM; it prints the flow to out.
func run(configPath string, count int, out io.Writer) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	app, cleanup, err := initApp(ctx, framework.ConfigPath(configPath))
	if err != nil {
		return err
	}
	defer cleanup()

	var notified atomic.Int64
	orders.Register(app, func(ctx context.Context, e orders.OrderPlaced) error {
		fmt.Fprintf(out, "notify-customer: order %s placed, emailing %s (%d.%02d EUR)\n",
			e.OrderID, e.Customer, e.AmountCents/100, e.AmountCents%100)
		if notified.Add(1) == int64(count) {
			cancel() // every order went through: shut down gracefully
		}
		return nil
	})

	go func() {
		select {
		case <-app.Started():
			if app.StartErr() != nil {
				return // Run returns why
			}
		case <-ctx.Done():
			return
		}
		customers := []string{"ada", "grace", "linus", "barbara"}
		for i := 1; i <= count; i++ {
			cmd := orders.PlaceOrder{
				OrderID:     fmt.Sprintf("order-%d", i),
				Customer:    customers[(i-1)%len(customers)],
				AmountCents: 1000 + 250*i,
			}
			fmt.Fprintf(out, "client: PlaceOrder %s for %s -> %s\n", cmd.OrderID, cmd.Customer, orders.CommandsTopic)
			if err := app.Publish(ctx, orders.CommandsTopic, cmd, framework.WithKey(cmd.OrderID)); err != nil {
				fmt.Fprintln(os.Stderr, "quickstart: publish:", err)
				cancel()
				return
			}
		}
	}()

	if err := app.Run(ctx); err != nil {
		return err
	}
	fmt.Fprintf(out, "done: %d orders placed and notified\n", notified.Load())
	return nil
}
