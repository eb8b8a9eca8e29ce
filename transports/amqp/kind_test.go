package amqp_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/millrace/millrace/transports"
	"github.com/millrace/millrace/transports/amqp"
)

func TestKind_OpensFromRegistry(t *testing.T) {
	reg, err := transports.NewRegistry(amqp.Kind())
	if err != nil {
		t.Fatal(err)
	}
	cfg := reg.DefaultConfigs()["amqp"]
	if _, ok := cfg.(*amqp.Config); !ok {
		t.Fatalf("DefaultConfig is %T, want *amqp.Config", cfg)
	}
	tr, err := reg.Open(context.Background(), "amqp", cfg, transports.Deps{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpen_BadURLErrorIsRedacted(t *testing.T) {
	const secret = "s3cr3t-Pa55"
	tests := []struct {
		name, url   string
		viaRegistry bool // also open through a Registry (skipped when slow)
	}{
		{"nothing listening", "amqp://guest:" + secret + "@127.0.0.1:1/", true},
		// RabbitMQ answers a failed login after a few seconds: try it once.
		{"wrong password", "amqp://guest:" + secret + "@127.0.0.1:5672/", false},
		{"malformed url", "amqp://guest:" + secret + "@127.0.0.1:port/", true},
		{"unknown scheme", "amqpx://guest:" + secret + "@127.0.0.1/", true},
	}
	reg, err := transports.NewRegistry(amqp.Kind())
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := amqp.DefaultConfig()
			cfg.URL = tt.url
			opens := map[string]func() error{
				"Open": func() error {
					tr, err := amqp.Open(context.Background(), *cfg, transports.Deps{Logger: slog.New(slog.DiscardHandler)})
					if err == nil {
						_ = tr.Close()
					}
					return err
				},
				"Registry.Open": func() error {
					tr, err := reg.Open(context.Background(), "amqp", cfg, transports.Deps{Logger: slog.New(slog.DiscardHandler)})
					if err == nil {
						_ = tr.Close()
					}
					return err
				},
			}
			if !tt.viaRegistry {
				delete(opens, "Registry.Open")
			}
			for name, open := range opens {
				err := open()
				if err == nil {
					t.Fatalf("%s succeeded, want an error", name)
				}
				if strings.Contains(err.Error(), secret) {
					t.Errorf("%s error shows the password: %v", name, err)
				}
				t.Logf("%s: %v", name, err)
			}
		})
	}
}
