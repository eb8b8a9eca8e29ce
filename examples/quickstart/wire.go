//go:build wireinject

package main

import (
	"context"

	"github.com/google/wire"

	"github.com/millrace/millrace/framework"
)

// initApp builds the App from config: registry, config, logger, transport.
func initApp(ctx context.Context, path framework.ConfigPath) (*framework.App, func(), error) {
	wire.Build(framework.ProviderSet)
	return nil, nil, nil
}
