package frameworktest_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/millrace/millrace/framework"
	"github.com/millrace/millrace/framework/frameworktest"
)

func fresh(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// TestFromEnvironment_RunsTheSameTestOnRabbitMQ runs a handler test on the
// RabbitMQ of the machine, configured only by the environment, as
// `MILLRACE_TRANSPORT_KIND=amqp go test` would: real time, real broker.
func TestFromEnvironment_RunsTheSameTestOnRabbitMQ(t *testing.T) {
	t.Setenv("MILLRACE_TRANSPORT_KIND", "amqp")
	t.Setenv("MILLRACE_TRANSPORT_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
	t.Setenv("MILLRACE_SERVICE_NAME", fresh("harness"))
	pings, pongs := fresh("pings"), fresh("pongs")
	t.Cleanup(func() { deleteAMQP(t, pings, pongs) })

	h := frameworktest.New(t, frameworktest.FromEnvironment(), frameworktest.WithTimeout(30*time.Second))
	if kind := h.App.Config().Transport.Kind; kind != "amqp" {
		t.Fatalf("transport %q, want amqp from the environment", kind)
	}
	framework.Handle(h.App, "ping", pings, func(ctx context.Context, p Ping) error {
		return h.App.Publish(ctx, pongs, Pong{N: p.N + 1})
	})
	framework.Handle(h.App, "pong", pongs, func(context.Context, Pong) error { return nil })
	h.Start()
	h.Publish(pings, Ping{N: 41})
	got := frameworktest.WaitConsumed[Pong](h, "pong", 1)
	if got[0].N != 42 {
		t.Errorf("pong %d, want 42", got[0].N)
	}
}

func TestFromEnvironment_WithoutVariablesIsTheMemoryTransport(t *testing.T) {
	t.Setenv("MILLRACE_TRANSPORT_KIND", "unset below, restored after the test")
	_ = os.Unsetenv("MILLRACE_TRANSPORT_KIND")
	h := frameworktest.New(t, frameworktest.FromEnvironment(), frameworktest.WithEnv())
	if kind := h.App.Config().Transport.Kind; kind != "memory" {
		t.Errorf("transport %q, want memory", kind)
	}
}

// deleteAMQP deletes the exchanges of topics and the queues bound to them,
// so that the shared RabbitMQ keeps nothing of the test.
func deleteAMQP(t *testing.T, topics ...string) {
	conn, err := amqp091.Dial("amqp://guest:guest@127.0.0.1:5672/")
	if err != nil {
		t.Logf("clean up RabbitMQ: %v", err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	defer ch.Close()
	service := os.Getenv("MILLRACE_SERVICE_NAME")
	for _, topic := range topics {
		for _, handler := range []string{"ping", "pong"} {
			_, _ = ch.QueueDelete(topic+"."+service+"."+handler, false, false, false)
		}
		_ = ch.ExchangeDelete(topic, false, false)
	}
	_, _ = ch.QueueDelete(service+".poison.retained", false, false, false)
	_ = ch.ExchangeDelete(service+".poison", false, false)
}
