package framework_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/framework"
	"github.com/millrace/millrace/transports"
	"github.com/millrace/millrace/transports/memory"
)

// fakeBrokerConfig is the config section of a second transport kind, with
// the field types and secret tags real transports use.
type fakeBrokerConfig struct {
	URL      string        `yaml:"url" millrace:"dsn"`
	Token    string        `yaml:"token" millrace:"secret"`
	Brokers  []string      `yaml:"brokers"`
	Prefetch int           `yaml:"prefetch"`
	Confirm  bool          `yaml:"confirm"`
	Ratio    float64       `yaml:"ratio"`
	Linger   time.Duration `yaml:"linger"`
	// Compress is optional: nil means the transport's default.
	Compress *bool `yaml:"compress"`
	TLS      struct {
		Enabled bool   `yaml:"enabled"`
		CAFile  string `yaml:"ca_file"`
	} `yaml:"tls"`
}

func (c *fakeBrokerConfig) Validate() error {
	if c.Prefetch < 0 {
		return &millrace.ConfigError{Key: "prefetch", Value: "negative", Problem: "must be 0 or greater"}
	}
	return nil
}

func testRegistry(t *testing.T) *transports.Registry {
	t.Helper()
	reg, err := transports.NewRegistry(memory.Kind(), transports.Kind{
		Name:          "fakebroker",
		DefaultConfig: func() any { return &fakeBrokerConfig{Prefetch: 10, URL: "fake://localhost"} },
		Open: func(context.Context, any, transports.Deps) (transports.Transport, error) {
			return nil, errors.New("fakebroker cannot be opened")
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func TestConfig_EmptyFileGivesDefaults(t *testing.T) {
	reg := testRegistry(t)
	for _, data := range []string{"", "# only a comment\n", "{}\n"} {
		cfg, err := framework.Parse([]byte(data), nil, reg)
		if err != nil {
			t.Fatalf("Parse(%q): %v", data, err)
		}
		if cfg.Service.Name != "millrace" || cfg.Transport.Kind != "memory" || cfg.Log.Level != "info" ||
			cfg.Log.Format != "text" || cfg.Handlers.Concurrency != 1 || cfg.Shutdown.Timeout != 30*time.Second ||
			cfg.Shutdown.CancelGrace != 5*time.Second {
			t.Errorf("Parse(%q) defaults = %+v", data, cfg)
		}
		mem, ok := cfg.Transport.Section().(*memory.Config)
		if !ok || *mem != *memory.DefaultConfig() {
			t.Errorf("memory section = %#v, want defaults %#v", cfg.Transport.Section(), memory.DefaultConfig())
		}
	}
}

func TestConfig_AbsentPathGivesDefaults(t *testing.T) {
	cfg, err := framework.Load("", nil, testRegistry(t))
	if err != nil || cfg.Transport.Kind != "memory" {
		t.Fatalf("Load(\"\") = %v, %v", cfg, err)
	}
}

func TestConfig_MissingFileIsAnError(t *testing.T) {
	_, err := framework.Load(filepath.Join(t.TempDir(), "nope.yaml"), nil, testRegistry(t))
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("err = %v, want 'does not exist'", err)
	}
}

func TestConfig_FileValues(t *testing.T) {
	path := filepath.Join(t.TempDir(), "service.yaml")
	data := `
service:
  name: orders
log:
  level: debug
  format: json
transport:
  kind: fakebroker
  fakebroker:
    url: amqp://guest:hunter2@localhost:5672/
    token: abc
    brokers: [a:9092, b:9092]
    prefetch: 50
    confirm: true
    ratio: 0.5
    linger: 5ms
    compress: false
    tls:
      enabled: true
      ca_file: /etc/ca.pem
  memory:
    redelivery_delay: 2s
handlers:
  concurrency: 8
shutdown:
  timeout: 10s
  cancel_grace: 1s
`
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := framework.Load(path, nil, testRegistry(t))
	if err != nil {
		t.Fatal(err)
	}
	fb := cfg.Transport.Section().(*fakeBrokerConfig)
	if cfg.Service.Name != "orders" || cfg.Log.Level != "debug" || cfg.Log.Format != "json" ||
		cfg.Handlers.Concurrency != 8 || cfg.Shutdown.Timeout != 10*time.Second || cfg.Shutdown.CancelGrace != time.Second {
		t.Errorf("cfg = %+v", cfg)
	}
	if fb.URL != "amqp://guest:hunter2@localhost:5672/" || fb.Token != "abc" || len(fb.Brokers) != 2 || fb.Brokers[1] != "b:9092" ||
		fb.Prefetch != 50 || !fb.Confirm || fb.Ratio != 0.5 || fb.Linger != 5*time.Millisecond || !fb.TLS.Enabled || fb.TLS.CAFile != "/etc/ca.pem" ||
		fb.Compress == nil || *fb.Compress {
		t.Errorf("fakebroker section = %+v", fb)
	}
	if got := cfg.Transport.Sections["memory"].(*memory.Config).RedeliveryDelay; got != 2*time.Second {
		t.Errorf("inactive memory section decoded redelivery_delay = %v, want 2s", got)
	}
}

func TestConfig_EnvOverridesFile(t *testing.T) {
	data := "transport:\n  kind: fakebroker\n  fakebroker:\n    prefetch: 5\nhandlers:\n  concurrency: 2\n"
	env := []string{
		"MILLRACE_HANDLERS_CONCURRENCY=16",
		"MILLRACE_TRANSPORT_FAKEBROKER_PREFETCH=7",
		"MILLRACE_TRANSPORT_FAKEBROKER_BROKERS=x:1, y:2",
		"MILLRACE_TRANSPORT_FAKEBROKER_TLS_ENABLED=true",
		"MILLRACE_TRANSPORT_FAKEBROKER_COMPRESS=false",
		"MILLRACE_SHUTDOWN_TIMEOUT=1m",
		"MILLRACE_CONFIG=/ignored/path.yaml", // the config path, not a key
		"PATH=/usr/bin",                      // not ours
	}
	cfg, err := framework.Parse([]byte(data), env, testRegistry(t))
	if err != nil {
		t.Fatal(err)
	}
	fb := cfg.Transport.Section().(*fakeBrokerConfig)
	if cfg.Handlers.Concurrency != 16 || fb.Prefetch != 7 || !fb.TLS.Enabled || cfg.Shutdown.Timeout != time.Minute || fb.Compress == nil || *fb.Compress {
		t.Errorf("cfg = %+v, section %+v", cfg, fb)
	}
	if len(fb.Brokers) != 2 || fb.Brokers[0] != "x:1" || fb.Brokers[1] != "y:2" {
		t.Errorf("brokers = %q", fb.Brokers)
	}
}

func TestConfig_EnvSelectsTransport(t *testing.T) {
	cfg, err := framework.Parse(nil, []string{"MILLRACE_TRANSPORT_KIND=fakebroker"}, testRegistry(t))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Transport.Kind != "fakebroker" {
		t.Fatalf("kind = %q", cfg.Transport.Kind)
	}
}

// TestConfig_Errors covers every validation and decoding error path: each
// must name the key, show the value (redacted if secret) and say what is
// allowed.
func TestConfig_Errors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		env  []string
		want []string // substrings of the error
		not  []string // must not appear (secrets)
	}{
		{name: "not yaml", yaml: "service: [", want: []string{"not valid YAML"}},
		{name: "unknown top-level key", yaml: "servise:\n  name: x\n", want: []string{`"servise"`, "unknown key", "allowed keys here: handlers, log, middleware, observability, service, shutdown, transport"}},
		{name: "unknown nested key", yaml: "log:\n  levle: debug\n", want: []string{`"log.levle"`, "allowed keys here: format, level"}},
		{name: "unknown transport section", yaml: "transport:\n  kafka:\n    brokers: [x]\n", want: []string{`"transport.kafka"`, "allowed keys here: fakebroker, kind, memory"}},
		{name: "unknown key in transport section", yaml: "transport:\n  memory:\n    retension: 5\n", want: []string{`"transport.memory.retension"`, "unknown key"}},
		{name: "section not a mapping", yaml: "log: debug\n", want: []string{`"log"`, "must be a mapping"}},
		{name: "scalar given a list", yaml: "log:\n  level: [debug]\n", want: []string{`"log.level"`, "single value"}},
		{name: "list given a scalar", yaml: "transport:\n  fakebroker:\n    brokers: a:1\n", want: []string{`"transport.fakebroker.brokers"`, "must be a list"}},
		{name: "not an integer", yaml: "handlers:\n  concurrency: lots\n", want: []string{`"handlers.concurrency"`, `"lots"`, "whole number"}},
		{name: "not a duration", yaml: "shutdown:\n  timeout: 30\n", want: []string{`"shutdown.timeout"`, `"30"`, "duration such as"}},
		{name: "not a bool", yaml: "transport:\n  fakebroker:\n    confirm: maybe\n", want: []string{`"transport.fakebroker.confirm"`, "true or false"}},
		{name: "not a number", yaml: "transport:\n  fakebroker:\n    ratio: half\n", want: []string{`"transport.fakebroker.ratio"`, "must be a number"}},
		{name: "bad service name", yaml: "service:\n  name: 'my service'\n", want: []string{`"service.name"`, `"my service"`, "letters, digits"}},
		{name: "empty service name", yaml: "service:\n  name: ''\n", want: []string{`"service.name"`}},
		{name: "bad log level", yaml: "log:\n  level: loud\n", want: []string{`"log.level"`, `"loud"`, "debug, info, warn, error"}},
		{name: "bad log format", yaml: "log:\n  format: xml\n", want: []string{`"log.format"`, `"xml"`, "text, json"}},
		{name: "unknown transport kind", yaml: "transport:\n  kind: carrier-pigeon\n", want: []string{`"transport.kind"`, `"carrier-pigeon"`, "known kinds: fakebroker, memory"}},
		{name: "unknown transport kind from env", env: []string{"MILLRACE_TRANSPORT_KIND=kafkaa"}, want: []string{`"transport.kind"`, `"kafkaa"`, "known kinds: fakebroker, memory"}},
		{name: "transport section invalid", yaml: "transport:\n  kind: fakebroker\n  fakebroker:\n    prefetch: -1\n", want: []string{`"transport.fakebroker.prefetch"`, "0 or greater"}},
		{name: "memory section invalid", yaml: "transport:\n  memory:\n    redelivery_delay: -1s\n", want: []string{`"transport.memory.redelivery_delay"`}},
		{name: "concurrency zero", yaml: "handlers:\n  concurrency: 0\n", want: []string{`"handlers.concurrency"`, `"0"`, "between 1 and 1024"}},
		{name: "concurrency too high", yaml: "handlers:\n  concurrency: 5000\n", want: []string{`"handlers.concurrency"`, "between 1 and 1024"}},
		{name: "max in flight negative", yaml: "handlers:\n  max_in_flight: -1\n", want: []string{`"handlers.max_in_flight"`, `"-1"`, "between 0 (one per partition) and 1024"}},
		{name: "shutdown timeout zero", yaml: "shutdown:\n  timeout: 0s\n", want: []string{`"shutdown.timeout"`, "greater than 0"}},
		{name: "negative cancel grace", yaml: "shutdown:\n  cancel_grace: -1s\n", want: []string{`"shutdown.cancel_grace"`, "0 or greater"}},
		{name: "bad env value", env: []string{"MILLRACE_HANDLERS_CONCURRENCY=many"}, want: []string{`"handlers.concurrency"`, `"many"`, "whole number", "MILLRACE_HANDLERS_CONCURRENCY"}},
		{name: "unknown env var", env: []string{"MILLRACE_TRANSPRT_KIND=memory"}, want: []string{"MILLRACE_TRANSPRT_KIND", "matches no config key"}},
		{name: "secret never echoed from file", yaml: "transport:\n  fakebroker:\n    url: [amqp://u:hunter2@h]\n", want: []string{`"transport.fakebroker.url"`}, not: []string{"hunter2"}},
		{name: "secret never echoed from env", env: []string{"MILLRACE_TRANSPORT_FAKEBROKER_PREFETCH=x", "MILLRACE_TRANSPORT_FAKEBROKER_TOKEN=hunter2", "MILLRACE_NOPE=hunter2"}, want: []string{"MILLRACE_NOPE"}, not: []string{"hunter2"}},
		{name: "several problems at once", yaml: "log:\n  level: loud\n  format: xml\n", want: []string{`"log.level"`, `"log.format"`}},
		{name: "every kind of problem in one pass", yaml: "handlers:\n  concurrency: 0\nlog:\n  level: verbose\n  colour: red\nshutdown:\n  timeout: soon\nmiddleware:\n  retry:\n    max_attempts: 0\n  breaker:\n    min_requests: 0\n",
			env:  []string{"MILLRACE_MIDDLEWARE_DEDUP_LEASE=-1s"},
			want: []string{`"handlers.concurrency"`, `"log.level": value "verbose"`, `"log.colour"`, `"shutdown.timeout": value "soon"`, `"middleware.retry.max_attempts"`, `"middleware.breaker.min_requests"`, `"middleware.dedup.lease"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := framework.Parse([]byte(tt.yaml), tt.env, testRegistry(t))
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(err.Error(), n) {
					t.Errorf("error %q leaks %q", err, n)
				}
			}
		})
	}
}

func TestConfig_ErrorsAreConfigErrors(t *testing.T) {
	_, err := framework.Parse([]byte("log:\n  level: loud\n"), nil, testRegistry(t))
	var ce *millrace.ConfigError
	if !errors.As(err, &ce) || ce.Key != "log.level" || ce.Value != "loud" {
		t.Fatalf("err = %#v, want *millrace.ConfigError for log.level", err)
	}
}

func TestConfig_PrintingRedactsSecrets(t *testing.T) {
	data := "transport:\n  kind: fakebroker\n  fakebroker:\n    url: amqp://guest:hunter2@localhost:5672/\n    token: s3cr3t-token\n"
	cfg, err := framework.Parse([]byte(data), nil, testRegistry(t))
	if err != nil {
		t.Fatal(err)
	}
	var logged strings.Builder
	logger := framework.NewLogger(cfg, &logged)
	logger.Info("config", "config", cfg)
	for name, out := range map[string]string{"String": cfg.String(), "slog": logged.String()} {
		for _, secret := range []string{"hunter2", "s3cr3t-token"} {
			if strings.Contains(out, secret) {
				t.Errorf("%s output leaks %q:\n%s", name, secret, out)
			}
		}
		for _, want := range []string{"guest:xxxxx@localhost", "fakebroker", "kind"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s output lacks %q:\n%s", name, want, out)
			}
		}
		if strings.Contains(out, "redelivery_delay") {
			t.Errorf("%s output shows the unused memory section:\n%s", name, out)
		}
	}
}
