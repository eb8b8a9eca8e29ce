package amqp

import (
	"context"
	"errors"

	"github.com/millrace/millrace/transports"
)

var errConfigType = errors.New("amqp: config must be a *amqp.Config")

// Kind describes the AMQP transport for a transports.Registry: it is selected
// by transport.kind "amqp", configured by the section transport.amqp (a
// *Config) and opened with Open.
func Kind() transports.Kind {
	return transports.Kind{
		Name:          "amqp",
		DefaultConfig: func() any { return DefaultConfig() },
		Open:          open,
	}
}

func open(ctx context.Context, cfg any, deps transports.Deps) (transports.Transport, error) {
	c, ok := cfg.(*Config)
	if !ok || c == nil {
		return nil, errConfigType
	}
	return Open(ctx, *c, deps.Logger)
}
