// Package framework is what a millrace service is written against: load
// config, build the App, register typed handlers, run.
//
//	reg, _ := framework.Transports()
//	cfg, err := framework.Load("service.yaml", os.Environ(), reg) // or "" for defaults
//	logger := framework.NewLogger(cfg, os.Stderr)
//	tr, cleanup, err := framework.OpenTransport(ctx, cfg, reg, logger)
//	defer cleanup()
//	app, err := framework.New(cfg, logger, tr)
//
//	framework.Handle(app, "place-order", "orders.commands", func(ctx context.Context, cmd PlaceOrder) error {
//		return app.Publish(ctx, "orders.events", OrderPlaced{ID: cmd.ID}, framework.WithKey(cmd.ID))
//	}, framework.Concurrency(8))
//
//	err = app.Run(ctx) // until SIGINT/SIGTERM, then a graceful shutdown
//
// The same steps are google/wire providers (ProviderSet), so a service's
// main needs one injector; see examples/quickstart.
//
// The code never names a broker: config chooses the transport
// (transport.kind, default memory), and the same handlers run on the
// in-memory transport in tests (package frameworktest) and on a real broker
// in production.
//
// Delivery is at least once. A message is acked after its handler returned
// nil and the messages it published were sent; otherwise it is nacked and
// delivered again. Messages a handler publishes carry the handled message's
// correlation id and its id as causation id.
package framework
