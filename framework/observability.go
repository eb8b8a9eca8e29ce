package framework

import (
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/millrace/millrace"
)

// ObservabilityConfig is what a service shows an operator (config section
// observability:): Prometheus metrics, OpenTelemetry traces across
// messages, and health, on one HTTP listener.
type ObservabilityConfig struct {
	// Addr is the host:port of the HTTP listener that serves /metrics,
	// /healthz and /readyz (for example 127.0.0.1:9464); empty (default):
	// none. It opens with the App and closes with it; an address that cannot
	// be listened on stops the start.
	Addr string `yaml:"addr"`
	// Metrics collects the App's Prometheus metrics; default true. Off, the
	// hot path counts nothing and /metrics is not served (404).
	Metrics bool `yaml:"metrics"`
	// Tracing exports traces.
	Tracing TracingConfig `yaml:"tracing"`
	// Readiness sets when /readyz reports the service degraded.
	Readiness ReadinessConfig `yaml:"readiness"`
}

// TracingConfig exports the App's spans with OTLP. Whether or not it
// exports, the App carries the W3C trace context (traceparent, tracestate)
// from the messages it handles to the messages it publishes.
type TracingConfig struct {
	// Endpoint is the OTLP collector: a URL (http://127.0.0.1:4318 for
	// protocol http, http://127.0.0.1:4317 for grpc; https:// for TLS) or
	// host:port (plaintext). Empty (default): spans are not exported.
	Endpoint string `yaml:"endpoint" millrace:"dsn"`
	// Protocol is http (default) or grpc.
	Protocol string `yaml:"protocol"`
	// SampleRatio is the fraction of new traces that are sampled, 0..1;
	// default 1. A message that arrives in a sampled trace stays in it.
	SampleRatio float64 `yaml:"sample_ratio"`
}

// ReadinessConfig sets the thresholds past which /readyz reports the service
// degraded (still 200: it works, but an operator should look).
type ReadinessConfig struct {
	// MaxBacklog is the backlog of a handler past which the service is
	// degraded, where the transport can tell it; 0 (default): no threshold.
	MaxBacklog int64 `yaml:"max_backlog"`
	// MaxPoison is the size of the poison topic past which the service is
	// degraded, where the transport can tell it; 0 (default): no threshold.
	MaxPoison int64 `yaml:"max_poison"`
}

// DefaultObservabilityConfig returns the defaults: metrics on, no listener,
// no trace export (protocol http, every trace sampled once it is on).
func DefaultObservabilityConfig() ObservabilityConfig {
	return ObservabilityConfig{Metrics: true, Tracing: TracingConfig{Protocol: "http", SampleRatio: 1}}
}

// validate returns one ConfigError per bad value, keys under prefix.
func (o *ObservabilityConfig) validate(prefix string) []error {
	var errs []error
	bad := func(key, value, problem string) {
		errs = append(errs, &millrace.ConfigError{Key: prefix + "." + key, Value: value, Problem: problem})
	}
	if o.Addr != "" {
		if _, port, err := net.SplitHostPort(o.Addr); err != nil {
			bad("addr", o.Addr, "must be host:port, such as 127.0.0.1:9464 or :9464")
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			bad("addr", o.Addr, "must end in a port number, 0 to 65535")
		}
	}
	t := o.Tracing
	if t.Protocol != "http" && t.Protocol != "grpc" {
		bad("tracing.protocol", t.Protocol, "must be one of: http, grpc")
	}
	if !(t.SampleRatio >= 0 && t.SampleRatio <= 1) {
		bad("tracing.sample_ratio", strconv.FormatFloat(t.SampleRatio, 'g', -1, 64), "must be between 0 and 1")
	}
	if e := t.Endpoint; e != "" {
		if strings.Contains(e, "://") {
			if u, err := url.Parse(e); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad("tracing.endpoint", e, "must be an http:// or https:// URL, or host:port")
			}
		} else if _, _, err := net.SplitHostPort(e); err != nil {
			bad("tracing.endpoint", e, "must be an http:// or https:// URL, or host:port")
		}
	}
	if o.Readiness.MaxBacklog < 0 {
		bad("readiness.max_backlog", strconv.FormatInt(o.Readiness.MaxBacklog, 10), "must be 0 (no threshold) or greater")
	}
	if o.Readiness.MaxPoison < 0 {
		bad("readiness.max_poison", strconv.FormatInt(o.Readiness.MaxPoison, 10), "must be 0 (no threshold) or greater")
	}
	return errs
}
