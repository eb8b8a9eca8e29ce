package cqrs

import (
	"github.com/google/wire"

	"github.com/millrace/millrace/framework"
)

// ProvideBus returns New(app) with no options, for google/wire; a service
// that needs options writes its own provider calling [New].
func ProvideBus(app *framework.App) *Bus { return New(app) }

// ProviderSet provides the *[Bus] of the *[framework.App] that
// [framework.ProviderSet] builds:
//
//	func initService(ctx context.Context, path framework.ConfigPath) (*Service, func(), error) {
//		wire.Build(framework.ProviderSet, cqrs.ProviderSet, NewService)
//		return nil, nil, nil
//	}
var ProviderSet = wire.NewSet(ProvideBus)
