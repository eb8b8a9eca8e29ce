package sql_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/millrace/millrace"
	sqltransport "github.com/millrace/millrace/transports/sql"
)

func TestConfig_Validate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*sqltransport.Config)
		wantKey string
	}{
		{"defaults", func(*sqltransport.Config) {}, ""},
		{"empty dsn", func(c *sqltransport.Config) { c.DSN = "" }, "dsn"},
		{"zero poll interval", func(c *sqltransport.Config) { c.PollInterval = 0 }, "poll_interval"},
		{"zero batch size", func(c *sqltransport.Config) { c.BatchSize = 0 }, "batch_size"},
		{"zero ack deadline", func(c *sqltransport.Config) { c.AckDeadline = 0 }, "ack_deadline"},
		{"negative resend interval", func(c *sqltransport.Config) { c.ResendInterval = -time.Second }, "resend_interval"},
		{"no idle connections", func(c *sqltransport.Config) { c.MaxIdleConns = 0 }, "max_idle_conns"},
		{"newest", func(c *sqltransport.Config) { c.InitialOffset = sqltransport.Newest }, ""},
		{"initial offset latest", func(c *sqltransport.Config) { c.InitialOffset = "latest" }, "initial_offset"},
		{"zero connect timeout", func(c *sqltransport.Config) { c.ConnectTimeout = 0 }, "connect_timeout"},
		{"negative query timeout", func(c *sqltransport.Config) { c.QueryTimeout = -time.Second }, "query_timeout"},
		{"prefix with a dash", func(c *sqltransport.Config) { c.TablePrefix = "my-app_" }, "table_prefix"},
	}
	for _, b := range backends {
		for _, tt := range tests {
			c := b.config()
			t.Run(b.name+"/"+tt.name, func(t *testing.T) {
				tt.mutate(c)
				err := c.Validate()
				if tt.wantKey == "" {
					if err != nil {
						t.Fatalf("Validate: %v", err)
					}
					return
				}
				var ce *millrace.ConfigError
				if !errors.As(err, &ce) || ce.Key != tt.wantKey {
					t.Fatalf("Validate: %v, want a ConfigError for %q", err, tt.wantKey)
				}
			})
		}
	}
}

// A DSN that cannot be parsed is named in the error without its password.
func TestConfig_BadDSNIsRedacted(t *testing.T) {
	c := sqltransport.PostgresDefaultConfig()
	c.DSN = "postgres://app:hunter2@db:notaport/orders"
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), `"dsn"`) || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("Validate: %v, want an error about dsn without the password", err)
	}
}
