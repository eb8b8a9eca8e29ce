package transports

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/millrace/millrace"
)

// Kind describes one transport: how it is named in config, what its config
// section looks like, and how it is opened. Kind packages build theirs with
// [NewKind]; a Kind written field by field (a fake in a test) works as well.
type Kind struct {
	// Name is the value of transport.kind that selects this transport, and
	// the name of its section under transport: in config.
	Name string

	// DefaultConfig returns a pointer to a new config struct for this kind,
	// filled with defaults. The config loader decodes the kind's section
	// into it (YAML tags name the keys), so it must be a pointer to a struct.
	DefaultConfig func() any

	// Open connects using cfg, a value returned by DefaultConfig and then
	// decoded and validated.
	Open func(ctx context.Context, cfg any, deps Deps) (Transport, error)
}

// NewKind returns the Kind called name of a transport package whose config
// section is a C, with defaults from defaults, and which opens with open:
// the shape every kind package has,
//
//	func Open(ctx context.Context, cfg Config, deps transports.Deps) (*Transport, error)
//
// as in kind := transports.NewKind("amqp", amqp.DefaultConfig, amqp.Open).
// The Kind's DefaultConfig returns defaults() (a *C, for the config loader
// to decode the section into); its Open takes that *C and calls open with
// the config it points to and deps with [Deps.WithDefaults] applied. Any
// other config, a nil *C included, is an error that names both types.
func NewKind[C any, T Transport](name string, defaults func() *C, open func(context.Context, C, Deps) (T, error)) Kind {
	return Kind{
		Name:          name,
		DefaultConfig: func() any { return defaults() },
		Open: func(ctx context.Context, cfg any, deps Deps) (Transport, error) {
			c, ok := cfg.(*C)
			if !ok || c == nil {
				return nil, fmt.Errorf("transport kind %q: config is %T, must be a non-nil %T", name, cfg, c)
			}
			tr, err := open(ctx, *c, deps.WithDefaults())
			if err != nil {
				return nil, err
			}
			return tr, nil
		},
	}
}

// ValidateKind checks the transport that a config chooses: [Registry.Open]
// and the framework's config validation both call it. kind must be one of
// known, the kinds there are; otherwise the error is a
// *[millrace.ConfigError] for key transport.kind that lists them, sorted.
// section is kind's config section: if it implements [Validator], the
// errors of its Validate are returned with their keys prefixed
// "transport.<kind>" (see [millrace.PrefixConfigKeys]). A nil section is
// not validated.
func ValidateKind(kind string, known []string, section any) error {
	if !slices.Contains(known, kind) {
		return &millrace.ConfigError{
			Key:     "transport.kind",
			Value:   kind,
			Problem: "unknown transport kind; known kinds: " + strings.Join(slices.Sorted(slices.Values(known)), ", "),
		}
	}
	if v, ok := section.(Validator); ok {
		if err := v.Validate(); err != nil {
			return millrace.PrefixConfigKeys("transport."+kind, err)
		}
	}
	return nil
}

// Validator is implemented by config structs that can check themselves.
// Keys in the [millrace.ConfigError] values it returns are relative to the
// struct's section.
type Validator interface {
	Validate() error
}
