package kafka_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/transports/kafka"
)

func TestConfig_Validate(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		name   string
		change func(c *kafka.Config)
		keys   []string // keys of the expected ConfigErrors; none means valid
	}{
		{name: "defaults", change: func(*kafka.Config) {}},
		{name: "no brokers", change: func(c *kafka.Config) { c.Brokers = nil }, keys: []string{"brokers"}},
		{name: "broker without port", change: func(c *kafka.Config) { c.Brokers = []string{"k1:9092", "k2"} }, keys: []string{"brokers.1"}},
		{name: "broker port out of range", change: func(c *kafka.Config) { c.Brokers = []string{"k1:70000"} }, keys: []string{"brokers.0"}},
		{name: "initial offset", change: func(c *kafka.Config) { c.InitialOffset = "latest" }, keys: []string{"initial_offset"}},
		{name: "newest", change: func(c *kafka.Config) { c.InitialOffset = "newest" }},
		{name: "acks", change: func(c *kafka.Config) { c.Producer.Acks = "1" }, keys: []string{"producer.acks"}},
		{name: "acks leader, idempotent by default off", change: func(c *kafka.Config) { c.Producer.Acks = "leader" }},
		{name: "idempotent needs acks all", change: func(c *kafka.Config) { c.Producer.Acks = "none"; c.Producer.Idempotent = &yes }, keys: []string{"producer.idempotent"}},
		{name: "idempotent off with acks all", change: func(c *kafka.Config) { c.Producer.Idempotent = &no }},
		{name: "compression", change: func(c *kafka.Config) { c.Producer.Compression = "brotli" }, keys: []string{"producer.compression"}},
		{name: "zstd", change: func(c *kafka.Config) { c.Producer.Compression = "zstd" }},
		{name: "negative linger", change: func(c *kafka.Config) { c.Producer.Linger = -time.Millisecond }, keys: []string{"producer.linger"}},
		{name: "negative batch size", change: func(c *kafka.Config) { c.Producer.BatchSize = -1 }, keys: []string{"producer.batch_size"}},
		{name: "tls cert without key", change: func(c *kafka.Config) { c.TLS = kafka.TLSConfig{Enabled: true, CertFile: "c.pem"} }, keys: []string{"tls.cert_file"}},
		{name: "tls cert ignored when disabled", change: func(c *kafka.Config) { c.TLS = kafka.TLSConfig{CertFile: "c.pem"} }},
		{name: "sasl mechanism", change: func(c *kafka.Config) { c.SASL = kafka.SASLConfig{Mechanism: "gssapi", Username: "u", Password: "p"} }, keys: []string{"sasl.mechanism"}},
		{name: "sasl without credentials", change: func(c *kafka.Config) { c.SASL = kafka.SASLConfig{Mechanism: "plain"} }, keys: []string{"sasl.username", "sasl.password"}},
		{name: "credentials without mechanism", change: func(c *kafka.Config) { c.SASL = kafka.SASLConfig{Username: "u", Password: "p"} }, keys: []string{"sasl.mechanism"}},
		{name: "scram", change: func(c *kafka.Config) {
			c.SASL = kafka.SASLConfig{Mechanism: "scram-sha-512", Username: "u", Password: "p"}
		}},
		{name: "several at once", change: func(c *kafka.Config) { c.InitialOffset = ""; c.Producer.Acks = "" }, keys: []string{"initial_offset", "producer.acks"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := kafka.DefaultConfig()
			tt.change(c)
			err := c.Validate()
			if got := configErrorKeys(t, err); strings.Join(got, ",") != strings.Join(tt.keys, ",") {
				t.Fatalf("keys %v, want %v (error: %v)", got, tt.keys, err)
			}
		})
	}
}

// configErrorKeys returns the keys of the ConfigErrors in err, failing the
// test on any other error.
func configErrorKeys(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	var keys []string
	for _, e := range errs {
		var ce *millrace.ConfigError
		if !errors.As(e, &ce) {
			t.Fatalf("not a ConfigError: %v", e)
		}
		if ce.Problem == "" {
			t.Errorf("%s: no problem stated", ce.Key)
		}
		keys = append(keys, ce.Key)
	}
	return keys
}

func TestConfig_Defaults(t *testing.T) {
	c := kafka.DefaultConfig()
	if len(c.Brokers) != 1 || c.Brokers[0] != "127.0.0.1:9092" || c.InitialOffset != "oldest" ||
		c.Producer.Acks != "all" || c.Producer.Idempotent != nil || c.Producer.Compression != "snappy" ||
		c.Producer.Linger != 5*time.Millisecond || c.Producer.BatchSize != 0 || c.TLS.Enabled || c.SASL.Mechanism != "" {
		t.Errorf("unexpected defaults: %+v", c)
	}
}
