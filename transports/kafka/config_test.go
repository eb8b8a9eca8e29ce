package kafka_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/transports/kafka"
)

func TestConfig_Validate(t *testing.T) {
	yes, no := true, false
	pki := newTestPKI(t)
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(c *kafka.Config)
		keys   []string // keys of the expected ConfigErrors; none means valid
	}{
		{name: "defaults", change: func(*kafka.Config) {}},
		{name: "no brokers", change: func(c *kafka.Config) { c.Brokers = nil }, keys: []string{"brokers"}},
		{name: "broker without port", change: func(c *kafka.Config) { c.Brokers = []string{"k1:9092", "k2"} }, keys: []string{"brokers.1"}},
		{name: "broker port out of range", change: func(c *kafka.Config) { c.Brokers = []string{"k1:70000"} }, keys: []string{"brokers.0"}},
		{name: "broker port not a number", change: func(c *kafka.Config) { c.Brokers = []string{"k1:http"} }, keys: []string{"brokers.0"}},
		{name: "broker without host", change: func(c *kafka.Config) { c.Brokers = []string{":9092"} }, keys: []string{"brokers.0"}},
		{name: "broker with scheme", change: func(c *kafka.Config) { c.Brokers = []string{"kafka://k1:9092"} }, keys: []string{"brokers.0"}},
		{name: "brokers as one comma list", change: func(c *kafka.Config) { c.Brokers = []string{"k1:9092,k2:9092"} }, keys: []string{"brokers.0"}},
		{name: "broker with space", change: func(c *kafka.Config) { c.Brokers = []string{" k1:9092"} }, keys: []string{"brokers.0"}},
		{name: "empty broker", change: func(c *kafka.Config) { c.Brokers = []string{""} }, keys: []string{"brokers.0"}},
		{name: "ipv6 broker", change: func(c *kafka.Config) { c.Brokers = []string{"[::1]:9092", "10.0.0.1:9093"} }},
		{name: "client id", change: func(c *kafka.Config) { c.ClientID = "billing-svc.v2_eu" }},
		{name: "empty client id", change: func(c *kafka.Config) { c.ClientID = "" }, keys: []string{"client_id"}},
		{name: "client id with space", change: func(c *kafka.Config) { c.ClientID = "billing svc" }, keys: []string{"client_id"}},
		{name: "connect timeout", change: func(c *kafka.Config) { c.ConnectTimeout = 300 * time.Millisecond }},
		{name: "no connect timeout", change: func(c *kafka.Config) { c.ConnectTimeout = 0 }, keys: []string{"connect_timeout"}},
		{name: "negative connect timeout", change: func(c *kafka.Config) { c.ConnectTimeout = -time.Second }, keys: []string{"connect_timeout"}},
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
		{name: "batch size without linger", change: func(c *kafka.Config) { c.Producer.BatchSize = 100 }, keys: []string{"producer.batch_size"}},
		{name: "batch size with linger", change: func(c *kafka.Config) { c.Producer.BatchSize = 100; c.Producer.Linger = time.Millisecond }},
		{name: "linger alone", change: func(c *kafka.Config) { c.Producer.Linger = 5 * time.Millisecond }},
		{name: "acks none", change: func(c *kafka.Config) { c.Producer.Acks = "none"; c.Producer.Compression = "none" }},
		{name: "tls without files", change: func(c *kafka.Config) { c.TLS = kafka.TLSConfig{Enabled: true, ServerName: "kafka.test"} }},
		{name: "tls with files", change: func(c *kafka.Config) {
			c.TLS = kafka.TLSConfig{Enabled: true, CAFile: pki.caFile, CertFile: pki.certFile, KeyFile: pki.keyFile}
		}},
		{name: "tls cert without key", change: func(c *kafka.Config) { c.TLS = kafka.TLSConfig{Enabled: true, CertFile: "c.pem"} }, keys: []string{"tls.cert_file"}},
		{name: "tls key without cert", change: func(c *kafka.Config) { c.TLS = kafka.TLSConfig{Enabled: true, KeyFile: pki.keyFile} }, keys: []string{"tls.cert_file"}},
		{name: "tls ca file missing", change: func(c *kafka.Config) { c.TLS = kafka.TLSConfig{Enabled: true, CAFile: "/nonexistent/ca.pem"} }, keys: []string{"tls.ca_file"}},
		{name: "tls ca file not pem", change: func(c *kafka.Config) { c.TLS = kafka.TLSConfig{Enabled: true, CAFile: notPEM} }, keys: []string{"tls.ca_file"}},
		{name: "tls key does not match", change: func(c *kafka.Config) {
			c.TLS = kafka.TLSConfig{Enabled: true, CertFile: pki.certFile, KeyFile: notPEM}
		}, keys: []string{"tls.cert_file"}},
		{name: "tls cert ignored when disabled", change: func(c *kafka.Config) { c.TLS = kafka.TLSConfig{CertFile: "c.pem"} }},
		{name: "sasl mechanism", change: func(c *kafka.Config) { c.SASL = kafka.SASLConfig{Mechanism: "gssapi", Username: "u", Password: "p"} }, keys: []string{"sasl.mechanism"}},
		{name: "sasl without credentials", change: func(c *kafka.Config) { c.SASL = kafka.SASLConfig{Mechanism: "plain"} }, keys: []string{"sasl.username", "sasl.password"}},
		{name: "credentials without mechanism", change: func(c *kafka.Config) { c.SASL = kafka.SASLConfig{Username: "u", Password: "p"} }, keys: []string{"sasl.mechanism"}},
		{name: "sasl without password", change: func(c *kafka.Config) { c.SASL = kafka.SASLConfig{Mechanism: "scram-sha-256", Username: "u"} }, keys: []string{"sasl.password"}},
		{name: "sasl mechanism is lower case", change: func(c *kafka.Config) { c.SASL = kafka.SASLConfig{Mechanism: "PLAIN", Username: "u", Password: "p"} }, keys: []string{"sasl.mechanism"}},
		{name: "plain", change: func(c *kafka.Config) { c.SASL = kafka.SASLConfig{Mechanism: "plain", Username: "u", Password: "p"} }},
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
	if len(c.Brokers) != 1 || c.Brokers[0] != "127.0.0.1:9092" || c.ClientID != "millrace" || c.ConnectTimeout != 10*time.Second || c.InitialOffset != "oldest" ||
		c.Producer.Acks != "all" || c.Producer.Idempotent != nil || c.Producer.Compression != "snappy" ||
		c.Producer.Linger != 0 || c.Producer.BatchSize != 0 || c.TLS.Enabled || c.SASL.Mechanism != "" {
		t.Errorf("unexpected defaults: %+v", c)
	}
}

// TestConfig_PasswordNeverPrinted: printing or logging a config shows the
// SASL password only redacted.
func TestConfig_PasswordNeverPrinted(t *testing.T) {
	const password = "hunter2-do-not-print"
	c := kafka.DefaultConfig()
	c.SASL = kafka.SASLConfig{Mechanism: "plain", Username: "svc", Password: password}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "kafka", c, "sasl", c.SASL)
	for _, out := range []string{fmt.Sprintf("%v", c), fmt.Sprintf("%+v", *c), fmt.Sprintf("%#v", *c), fmt.Sprint(c.SASL), logged.String()} {
		if strings.Contains(out, password) {
			t.Errorf("password printed: %s", out)
		}
		if !strings.Contains(out, "svc") {
			t.Errorf("username missing: %s", out)
		}
	}
}
