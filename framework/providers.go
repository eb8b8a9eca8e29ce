package framework

import (
	"context"
	"log/slog"
	"os"

	"github.com/google/wire"

	"github.com/millrace/millrace/transports"
	"github.com/millrace/millrace/transports/amqp"
	"github.com/millrace/millrace/transports/kafka"
	"github.com/millrace/millrace/transports/memory"
	sqltransport "github.com/millrace/millrace/transports/sql"
)

// ConfigPath is the path of the service's YAML config file, as wire needs a
// distinct type for it. Empty means: the file named by MILLRACE_CONFIG, or
// no file at all (defaults and environment only).
type ConfigPath string

// Transports returns the registry of the transports millrace ships: memory
// (the default), kafka, amqp (RabbitMQ), postgres and mysql.
func Transports() (*transports.Registry, error) {
	return transports.NewRegistry(
		memory.Kind(),
		kafka.Kind(),
		amqp.Kind(),
		sqltransport.PostgresKind(),
		sqltransport.MySQLKind(),
	)
}

// ProvideConfig loads the config file at path (or MILLRACE_CONFIG's) with
// the process environment's overrides; see Load.
func ProvideConfig(path ConfigPath, reg *transports.Registry) (*Config, error) {
	p := string(path)
	if p == "" {
		p = os.Getenv(EnvConfigPath)
	}
	return Load(p, os.Environ(), reg)
}

// ProvideLogger returns NewLogger(cfg, os.Stderr).
func ProvideLogger(cfg *Config) *slog.Logger {
	return NewLogger(cfg, os.Stderr)
}

// OpenTransport opens the transport that cfg.Transport.Kind names. The
// returned cleanup closes it (closing twice is harmless, so the App's own
// Stop and the cleanup can both run).
func OpenTransport(ctx context.Context, cfg *Config, reg *transports.Registry, logger *slog.Logger) (transports.Transport, func(), error) {
	tr, err := reg.Open(ctx, cfg.Transport.Kind, cfg.Transport.Section(), transports.Deps{Logger: logger.With(slog.String("service", cfg.Service.Name))})
	if err != nil {
		return nil, nil, err
	}
	return tr, func() { _ = tr.Close() }, nil
}

// Provider sets for google/wire. An injector that builds an App from a
// config path and a context needs only ProviderSet:
//
//	func initApp(ctx context.Context, path framework.ConfigPath) (*framework.App, func(), error) {
//		wire.Build(framework.ProviderSet)
//		return nil, nil, nil
//	}
//
// The finer sets let a service replace one piece (its own logger, a
// transport registry with more kinds) and keep the rest.
var (
	// ConfigSet loads *Config with the built-in transports.
	ConfigSet = wire.NewSet(Transports, ProvideConfig)
	// LoggerSet provides the *slog.Logger that config asks for.
	LoggerSet = wire.NewSet(ProvideLogger)
	// TransportSet opens the configured transports.Transport.
	TransportSet = wire.NewSet(OpenTransport)
	// AppSet builds the *App.
	AppSet = wire.NewSet(New)
	// ProviderSet is all of the above.
	ProviderSet = wire.NewSet(ConfigSet, LoggerSet, TransportSet, AppSet)
)
