package amqp_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/transports/amqp"
)

func TestConfig_Validate(t *testing.T) {
	tests := []struct {
		name     string
		mutate   func(*amqp.Config)
		wantKeys []string // empty: valid
	}{
		{"defaults", func(*amqp.Config) {}, nil},
		{"topic exchange", func(c *amqp.Config) { c.ExchangeType = amqp.ExchangeTopic }, nil},
		{"amqps with tls", func(c *amqp.Config) {
			c.URL = "amqps://u:p@rabbit:5671/vhost"
			c.TLS = amqp.TLSConfig{Enabled: true, CertFile: "c.pem", KeyFile: "k.pem"}
		}, nil},
		{"queue options", func(c *amqp.Config) {
			c.Queue = amqp.QueueConfig{MaxPriority: 10, MessageTTL: time.Minute, MaxLength: 100, Overflow: amqp.OverflowRejectPublish}
		}, nil},
		{"zero channels", func(c *amqp.Config) { c.PublisherChannels = 0 }, []string{"publisher_channels"}},
		{"empty url", func(c *amqp.Config) { c.URL = "" }, []string{"url"}},
		{"not an amqp url", func(c *amqp.Config) { c.URL = "http://guest:s3cret@host/" }, []string{"url"}},
		{"bad port", func(c *amqp.Config) { c.URL = "amqp://guest:s3cret@host:port/" }, []string{"url"}},
		{"unknown exchange type", func(c *amqp.Config) { c.ExchangeType = "direct" }, []string{"exchange_type"}},
		{"topic without exchange", func(c *amqp.Config) {
			c.ExchangeType = amqp.ExchangeTopic
			c.Exchange = ""
		}, []string{"exchange"}},
		{"zero prefetch", func(c *amqp.Config) { c.Prefetch = 0 }, []string{"prefetch"}},
		{"negative channels", func(c *amqp.Config) { c.PublisherChannels = -1 }, []string{"publisher_channels"}},
		{"priority too high", func(c *amqp.Config) { c.Queue.MaxPriority = 256 }, []string{"queue.max_priority"}},
		{"negative priority", func(c *amqp.Config) { c.Queue.MaxPriority = -1 }, []string{"queue.max_priority"}},
		{"sub-millisecond ttl", func(c *amqp.Config) { c.Queue.MessageTTL = time.Microsecond }, []string{"queue.message_ttl"}},
		{"negative ttl", func(c *amqp.Config) { c.Queue.MessageTTL = -time.Second }, []string{"queue.message_ttl"}},
		{"negative max length", func(c *amqp.Config) { c.Queue.MaxLength = -1 }, []string{"queue.max_length"}},
		{"unknown overflow", func(c *amqp.Config) {
			c.Queue.MaxLength = 10
			c.Queue.Overflow = "drop-tail"
		}, []string{"queue.overflow"}},
		{"overflow without max length", func(c *amqp.Config) { c.Queue.Overflow = amqp.OverflowDropHead }, []string{"queue.overflow"}},
		{"unknown queue version", func(c *amqp.Config) { c.Queue.Version = 3 }, []string{"queue.version"}},
		{"tls on amqp url", func(c *amqp.Config) { c.TLS.Enabled = true }, []string{"tls.enabled"}},
		{"tls files without tls", func(c *amqp.Config) { c.TLS.CAFile = "ca.pem" }, []string{"tls.enabled"}},
		{"cert without key", func(c *amqp.Config) {
			c.URL = "amqps://u:p@rabbit/"
			c.TLS = amqp.TLSConfig{Enabled: true, CertFile: "c.pem"}
		}, []string{"tls.key_file"}},
		{"key without cert", func(c *amqp.Config) {
			c.URL = "amqps://u:p@rabbit/"
			c.TLS = amqp.TLSConfig{Enabled: true, KeyFile: "k.pem"}
		}, []string{"tls.cert_file"}},
		{"zero reconnect interval", func(c *amqp.Config) { c.ReconnectInitialInterval = 0 }, []string{"reconnect_initial_interval"}},
		{"max below initial", func(c *amqp.Config) {
			c.ReconnectInitialInterval = time.Minute
			c.ReconnectMaxInterval = time.Second
		}, []string{"reconnect_max_interval"}},
		{"several", func(c *amqp.Config) {
			c.Prefetch = -1
			c.ExchangeType = ""
		}, []string{"exchange_type", "prefetch"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := amqp.DefaultConfig()
			tt.mutate(c)
			err := c.Validate()
			if len(tt.wantKeys) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors for %v", tt.wantKeys)
			}
			var got []string
			for _, e := range flatten(err) {
				var ce *millrace.ConfigError
				if !errors.As(e, &ce) {
					t.Fatalf("error %v is not a *millrace.ConfigError", e)
				}
				got = append(got, ce.Key)
			}
			if strings.Join(got, ",") != strings.Join(tt.wantKeys, ",") {
				t.Errorf("keys = %v, want %v (%v)", got, tt.wantKeys, err)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

// flatten returns the errors joined in err, or err itself.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
