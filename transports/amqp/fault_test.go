package amqp_test

import (
	"context"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/transports/amqp"
)

// rabbitmqctl runs rabbitmqctl with args.
func rabbitmqctl(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "rabbitmqctl", args...).CombinedOutput(); err != nil {
		t.Errorf("rabbitmqctl %v: %v: %s", args, err, out)
	}
}

// While 10,000 messages flow from publisher to subscriber, the broker's
// application is stopped and started again. Publishes during the outage
// fail, a caller that retries gets them through once the broker is back,
// the subscription resumes by itself, and every message arrives at least
// once.
//
// It stops the shared RabbitMQ for a few seconds, so it runs only with
// MILLRACE_FAULTS=1 (CI runs it in a serial step of its own).
// TestReconnect_BrokerOutageDuringFlow covers the same paths on every run
// by cutting only its own connections.
func TestFault_BrokerRestartDuringFlow(t *testing.T) {
	if os.Getenv("MILLRACE_FAULTS") != "1" {
		t.Skip("stops the shared RabbitMQ: set MILLRACE_FAULTS=1 to run")
	}
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		t.Fatal("rabbitmqctl not on PATH")
	}
	const total = 10000

	tr := openTransport(t, func(c *amqp.Config) {
		c.ReconnectInitialInterval = 100 * time.Millisecond
		c.ReconnectMaxInterval = time.Second
	})
	topic := uniqueTopic("fault")
	subs := subscribeGroups(t, tr, topic, nil, "g")

	var stopped atomic.Bool
	t.Cleanup(func() {
		if stopped.Load() {
			rabbitmqctl(t, "start_app")
		}
	})

	ids := make([]string, total)
	for i := range ids {
		ids[i] = watermill.NewUUID()
	}
	var published, failures atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	var wg sync.WaitGroup
	// Publishers: 8 goroutines, each retrying a failed publish until it
	// succeeds.
	next := atomic.Int64{}
	for range 8 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= total {
					return
				}
				for {
					err := tr.Publisher().Publish(topic, message.NewMessage(ids[i], []byte("m")))
					if err == nil {
						break
					}
					failures.Add(1)
					select {
					case <-ctx.Done():
						t.Errorf("publish %d: gave up: %v", i, err)
						return
					case <-time.After(100 * time.Millisecond):
					}
				}
				published.Add(1)
			}
		})
	}
	// The fault, a fifth of the way in.
	wg.Go(func() {
		for published.Load() < total/5 && ctx.Err() == nil {
			time.Sleep(time.Millisecond)
		}
		stopped.Store(true)
		t.Logf("stop_app after %d published", published.Load())
		rabbitmqctl(t, "stop_app")
		time.Sleep(3 * time.Second)
		t.Logf("start_app after %d published", published.Load())
		rabbitmqctl(t, "start_app")
		stopped.Store(false)
	})

	seen := make(map[string]int, total)
	start := time.Now()
	for len(seen) < total {
		select {
		case m, ok := <-subs["g"]:
			if !ok {
				t.Fatalf("subscription closed after %d of %d ids", len(seen), total)
			}
			seen[m.UUID]++
			m.Ack()
		case <-ctx.Done():
			t.Fatalf("received %d of %d ids within the deadline (%d published, %d publish failures)",
				len(seen), total, published.Load(), failures.Load())
		}
	}
	wg.Wait()
	dups := 0
	for _, n := range seen {
		dups += n - 1
	}
	for _, id := range ids {
		if seen[id] == 0 {
			t.Errorf("id %s never received", id)
		}
	}
	t.Logf("all %d ids received in %v; %d publish failures retried; %d duplicate deliveries",
		total, time.Since(start).Round(time.Millisecond), failures.Load(), dups)
}
