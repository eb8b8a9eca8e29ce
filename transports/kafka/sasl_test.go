package kafka_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/millrace/millrace/transports"
	"github.com/millrace/millrace/transports/kafka"
)

// TestOpen_SASL connects with every mechanism to a broker that requires SASL
// and round-trips a message, which exercises the SCRAM client.
func TestOpen_SASL(t *testing.T) {
	for _, mech := range []struct{ config, kfake string }{
		{"plain", "PLAIN"},
		{"scram-sha-256", "SCRAM-SHA-256"},
		{"scram-sha-512", "SCRAM-SHA-512"},
	} {
		t.Run(mech.config, func(t *testing.T) {
			brokers := newCluster(t, 1, kfake.EnableSASL(), kfake.Superuser(mech.kfake, "svc", "s3cr3t-pw"))
			cfg := testConfig(brokers)
			cfg.SASL = kafka.SASLConfig{Mechanism: mech.config, Username: "svc", Password: "s3cr3t-pw"}
			tr := openTransport(t, cfg)

			sub, err := tr.Subscriber("g")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			ch, err := sub.Subscribe(ctx, "t")
			if err != nil {
				t.Fatal(err)
			}
			id := watermill.NewUUID()
			if err := tr.Publisher().Publish("t", message.NewMessage(id, nil)); err != nil {
				t.Fatal(err)
			}
			select {
			case m := <-ch:
				if m.UUID != id {
					t.Fatalf("got %s, want %s", m.UUID, id)
				}
				m.Ack()
			case <-ctx.Done():
				t.Fatal("message not received")
			}
		})
	}
}

// TestOpen_SASLPasswordNeverInErrors checks that neither a config error nor a
// failed authentication puts the password in the error.
func TestOpen_SASLPasswordNeverInErrors(t *testing.T) {
	const password = "hunter2-do-not-print"
	brokers := newCluster(t, 1, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "svc", "the-right-one"))

	cases := []struct {
		name string
		sasl kafka.SASLConfig
	}{
		{"bad mechanism", kafka.SASLConfig{Mechanism: "md5", Username: "svc", Password: password}},
		{"no mechanism", kafka.SASLConfig{Username: "svc", Password: password}},
		{"no username", kafka.SASLConfig{Mechanism: "plain", Password: password}},
		{"wrong password, scram", kafka.SASLConfig{Mechanism: "scram-sha-256", Username: "svc", Password: password}},
		{"wrong password, plain", kafka.SASLConfig{Mechanism: "plain", Username: "svc", Password: password}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(brokers)
			cfg.SASL = tc.sasl
			// Through the registry, as a service opens it.
			reg, err := transports.NewRegistry(kafka.Kind())
			if err != nil {
				t.Fatal(err)
			}
			tr, err := reg.Open(context.Background(), "kafka", cfg, transports.Deps{Logger: testLogger()})
			if err == nil {
				_ = tr.Close()
				t.Fatal("open succeeded, want an error")
			}
			t.Log(err)
			if strings.Contains(err.Error(), password) {
				t.Fatalf("error shows the password: %v", err)
			}
		})
	}
}

// TestOpen_SASLPlainWithoutTLSWarnsAndLogsNoPassword opens with SASL PLAIN
// over plaintext and logs at debug level through a round trip: the log
// warns about the clear-text password and never contains it.
func TestOpen_SASLPlainWithoutTLSWarnsAndLogsNoPassword(t *testing.T) {
	const password = "hunter2-do-not-log"
	brokers := newCluster(t, 1, kfake.EnableSASL(), kfake.Superuser("PLAIN", "svc", password))
	cfg := testConfig(brokers)
	cfg.SASL = kafka.SASLConfig{Mechanism: "plain", Username: "svc", Password: password}
	var logs syncBuffer
	tr, err := kafka.Open(context.Background(), *cfg, transports.Deps{
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, tr)
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if !strings.Contains(out, "SASL PLAIN without TLS") {
		t.Errorf("no warning about PLAIN without TLS in:\n%s", out)
	}
	if strings.Contains(out, password) {
		t.Errorf("password logged:\n%s", out)
	}
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
