package framework

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/transports"
)

// Config is a service's whole configuration: one YAML file plus MILLRACE_*
// environment overrides (see Load). Every key has a default, so the zero file
// runs the service on the in-memory transport.
//
// Struct tags: yaml names the key; `millrace:"secret"` marks a value that is
// never printed; `millrace:"dsn"` marks a connection string whose password is
// never printed.
type Config struct {
	Service    ServiceConfig    `yaml:"service"`
	Log        LogConfig        `yaml:"log"`
	Transport  TransportConfig  `yaml:"transport"`
	Handlers   HandlersConfig   `yaml:"handlers"`
	Middleware MiddlewareConfig `yaml:"middleware"`
	Shutdown   ShutdownConfig   `yaml:"shutdown"`
	// Observability is metrics, tracing and health.
	Observability ObservabilityConfig `yaml:"observability"`
}

// ServiceConfig identifies the service.
type ServiceConfig struct {
	// Name is stamped on every published message (published_by), prefixes
	// default consumer groups ("<name>.<handler>") and is on every log line.
	// Letters, digits, '.', '_' and '-'; default "millrace".
	Name string `yaml:"name"`
}

// LogConfig chooses the log/slog handler.
type LogConfig struct {
	// Level is debug, info, warn or error; default info.
	Level string `yaml:"level"`
	// Format is text or json; default text.
	Format string `yaml:"format"`
}

// TransportConfig chooses the broker.
type TransportConfig struct {
	// Kind names the transport (transport.kind); default memory. It must be
	// one of the kinds of the registry the config was loaded with.
	Kind string `yaml:"kind"`
	// Sections holds each known kind's own config, keyed by kind name
	// (transport.memory, transport.kafka, ...). Only the chosen kind's
	// section is validated and used.
	Sections map[string]any `yaml:",inline"`
}

// Section returns the config section of the chosen kind (a pointer to that
// transport's config struct), or nil if the kind is unknown.
func (c TransportConfig) Section() any { return c.Sections[c.Kind] }

// HandlersConfig holds defaults for every handler; a handler's own options
// override them.
type HandlersConfig struct {
	// Concurrency is how many subscriptions one handler has, each handling
	// one message at a time (on Kafka, one per partition assigned to it);
	// default 1, at most 1024. Messages with the same partition key are still
	// handled one at a time, in order, on transports that order by key.
	Concurrency int `yaml:"concurrency"`

	// MaxInFlight caps how many messages of one subscription are handled
	// at once on transports whose subscriptions hand out one message per
	// partition (Kafka): 0, the default, means one per partition assigned
	// to the subscription, as Watermill's router does; at most 1024. Set it
	// for handlers that hold a scarce resource each, such as a database
	// connection. Other transports hand out one message at a time per
	// subscription anyway.
	MaxInFlight int `yaml:"max_in_flight"`
}

// ShutdownConfig bounds graceful shutdown.
type ShutdownConfig struct {
	// Timeout is how long in-flight handlers may run to completion after the
	// service stopped taking new messages; default 30s. Their contexts are
	// cancelled only when it has passed.
	Timeout time.Duration `yaml:"timeout"`
	// CancelGrace is how long, after their contexts were cancelled, the
	// service still waits for handlers that have not returned before it
	// closes the transport anyway (their messages are then not acked, so the
	// broker delivers them again); default 5s.
	CancelGrace time.Duration `yaml:"cancel_grace"`
}

// Defaults of Config.
const (
	DefaultServiceName         = "millrace"
	DefaultLogLevel            = "info"
	DefaultLogFormat           = "text"
	DefaultTransportKind       = "memory"
	DefaultConcurrency         = 1
	MaxConcurrency             = 1024
	DefaultShutdownTimeout     = 30 * time.Second
	DefaultShutdownCancelGrace = 5 * time.Second
)

// DefaultConfig returns the configuration an empty file gives: the in-memory
// transport, info logs as text, one message at a time per handler. reg
// supplies the transport sections; it must not be nil.
func DefaultConfig(reg *transports.Registry) *Config {
	return &Config{
		Service:    ServiceConfig{Name: DefaultServiceName},
		Log:        LogConfig{Level: DefaultLogLevel, Format: DefaultLogFormat},
		Transport:  TransportConfig{Kind: DefaultTransportKind, Sections: reg.DefaultConfigs()},
		Handlers:   HandlersConfig{Concurrency: DefaultConcurrency},
		Middleware: DefaultMiddlewareConfig(),
		Shutdown:   ShutdownConfig{Timeout: DefaultShutdownTimeout, CancelGrace: DefaultShutdownCancelGrace},

		Observability: DefaultObservabilityConfig(),
	}
}

var serviceNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError,
}

// Validate checks every value and returns all problems at once, each a
// *millrace.ConfigError naming the key, the value and what is allowed.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, value, problem string) {
		errs = append(errs, &millrace.ConfigError{Key: key, Value: value, Problem: problem})
	}
	if !serviceNamePattern.MatchString(c.Service.Name) {
		bad("service.name", c.Service.Name, "must start with a letter or digit and hold only letters, digits, '.', '_' and '-'")
	}
	if _, ok := logLevels[c.Log.Level]; !ok {
		bad("log.level", c.Log.Level, "must be one of: debug, info, warn, error")
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		bad("log.format", c.Log.Format, "must be one of: text, json")
	}
	if err := transports.ValidateKind(c.Transport.Kind, sortedKeys(c.Transport.Sections), c.Transport.Section()); err != nil {
		errs = append(errs, err)
	}
	if c.Handlers.Concurrency < 1 || c.Handlers.Concurrency > MaxConcurrency {
		bad("handlers.concurrency", strconv.Itoa(c.Handlers.Concurrency), fmt.Sprintf("must be between 1 and %d", MaxConcurrency))
	}
	if c.Handlers.MaxInFlight < 0 || c.Handlers.MaxInFlight > MaxConcurrency {
		bad("handlers.max_in_flight", strconv.Itoa(c.Handlers.MaxInFlight), fmt.Sprintf("must be between 0 (one per partition) and %d", MaxConcurrency))
	}
	errs = append(errs, c.Middleware.validate("middleware")...)
	if c.Shutdown.Timeout <= 0 {
		bad("shutdown.timeout", c.Shutdown.Timeout.String(), "must be greater than 0")
	}
	errs = append(errs, c.Observability.validate("observability")...)
	if c.Shutdown.CancelGrace < 0 {
		bad("shutdown.cancel_grace", c.Shutdown.CancelGrace.String(), "must be 0 or greater")
	}
	return errors.Join(errs...)
}

// slogLevel returns the slog level of c.Log.Level (info if unknown).
func (c *Config) slogLevel() slog.Level {
	if l, ok := logLevels[c.Log.Level]; ok {
		return l
	}
	return slog.LevelInfo
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
