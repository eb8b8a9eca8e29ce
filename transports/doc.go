// Package transports turns configuration into Watermill publishers and
// subscribers. It knows brokers and nothing of handlers.
//
// Each broker lives in a package of its own (transports/memory, and next to it
// kafka, amqp and sql) and describes itself with a Kind: its name as written in
// config (transport.kind), a constructor for its config section filled with
// defaults, and an Open function that connects. A Registry holds the kinds a
// service can choose from and opens the one that config names; an unknown name
// is an error that lists the known ones.
//
//	reg, _ := transports.NewRegistry(memory.Kind())
//	cfg := reg.DefaultConfigs()["memory"] // *memory.Config with defaults
//	tr, err := reg.Open(ctx, "memory", cfg, transports.Deps{Logger: logger})
//
// Every kind package has the same shape, which [NewKind] turns into its
// [Kind]: a Config struct with Validate, a DefaultConfig function returning
// a *Config, and
//
//	func Open(ctx context.Context, cfg Config, deps transports.Deps) (*Transport, error)
//
// Its Transport keeps the subscribers it made in a [Subscribers] set, and
// every error it returns because something is closed wraps [ErrClosed].
package transports
