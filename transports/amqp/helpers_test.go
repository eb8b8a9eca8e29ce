package amqp_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/millrace/millrace/transports"
	"github.com/millrace/millrace/transports/amqp"
)

const brokerURL = "amqp://guest:guest@127.0.0.1:5672/"

// openTransport opens a transport on the test broker with the defaults,
// changed by mutate, and closes it when the test ends.
func openTransport(t testing.TB, mutate func(*amqp.Config)) *amqp.Transport {
	t.Helper()
	cfg := amqp.DefaultConfig()
	cfg.URL = brokerURL
	if mutate != nil {
		mutate(cfg)
	}
	tr, err := amqp.Open(context.Background(), *cfg, transports.Deps{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := tr.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return tr
}

// uniqueTopic returns a topic name no other test uses.
func uniqueTopic(prefix string) string {
	return "millrace-test." + prefix + "." + watermill.NewShortUUID()
}

// deleteLater deletes the named queues and exchanges when the test ends,
// after cleanups registered later (such as closing transports) have run.
func deleteLater(t testing.TB, queues, exchanges func() []string) {
	t.Helper()
	t.Cleanup(func() {
		conn, err := amqp091.Dial(brokerURL)
		if err != nil {
			t.Logf("cleanup: %v", err)
			return
		}
		defer conn.Close()
		for _, q := range queues() {
			if ch, err := conn.Channel(); err == nil {
				_, _ = ch.QueueDelete(q, false, false, false)
				_ = ch.Close()
			}
		}
		for _, x := range exchanges() {
			if ch, err := conn.Channel(); err == nil {
				_ = ch.ExchangeDelete(x, false, false)
				_ = ch.Close()
			}
		}
	})
}

// names is a concurrency-safe list of names.
type names struct {
	mu   sync.Mutex
	list []string
}

func (n *names) add(s ...string) {
	n.mu.Lock()
	n.list = append(n.list, s...)
	n.mu.Unlock()
}

func (n *names) get() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.list...)
}

// newMessage returns a message with a new UUID and payload.
func newMessage(payload string) *message.Message {
	return message.NewMessage(watermill.NewUUID(), []byte(payload))
}

// cleanUp deletes queue (unless "") and exchange, for examples (which have
// no t).
func cleanUp(exchange, queue string) {
	conn, err := amqp091.Dial(brokerURL)
	if err != nil {
		return
	}
	defer conn.Close()
	if ch, err := conn.Channel(); err == nil {
		if queue != "" {
			_, _ = ch.QueueDelete(queue, false, false, false)
		}
		_ = ch.ExchangeDelete(exchange, false, false)
		_ = ch.Close()
	}
}
