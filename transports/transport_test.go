package transports_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/transports"
)

type sectionConfig struct{ Port int }

func (c *sectionConfig) Validate() error {
	if c.Port <= 0 {
		return &millrace.ConfigError{Key: "port", Value: "0", Problem: "must be greater than 0"}
	}
	return nil
}

func kind(name string, opened *bool) transports.Kind {
	return transports.Kind{
		Name:          name,
		DefaultConfig: func() any { return &sectionConfig{Port: 1} },
		Open: func(_ context.Context, cfg any, deps transports.Deps) (transports.Transport, error) {
			if deps.Logger == nil {
				return nil, errors.New("no logger")
			}
			*opened = true
			return nil, nil
		},
	}
}

func TestNewRegistry_Errors(t *testing.T) {
	var opened bool
	tests := []struct {
		name  string
		kinds []transports.Kind
		want  string
	}{
		{"empty name", []transports.Kind{{DefaultConfig: func() any { return nil }}}, "empty name"},
		{"no open", []transports.Kind{{Name: "x", DefaultConfig: func() any { return nil }}}, `kind "x" needs both`},
		{"duplicate", []transports.Kind{kind("x", &opened), kind("x", &opened)}, `kind "x" registered twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := transports.NewRegistry(tt.kinds...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestRegistry_OpenUnknownKindListsKnownOnes(t *testing.T) {
	var opened bool
	reg, err := transports.NewRegistry(kind("memory", &opened), kind("amqp", &opened))
	if err != nil {
		t.Fatal(err)
	}
	_, err = reg.Open(context.Background(), "kafak", nil, transports.Deps{})
	var ce *millrace.ConfigError
	if !errors.As(err, &ce) || ce.Key != "transport.kind" || ce.Value != "kafak" || !strings.Contains(ce.Problem, "known kinds: amqp, memory") {
		t.Fatalf("err = %v", err)
	}
	if opened {
		t.Error("an unknown kind opened something")
	}
}

func TestRegistry_OpenValidatesSectionWithPrefixedKeys(t *testing.T) {
	var opened bool
	reg, _ := transports.NewRegistry(kind("amqp", &opened))
	_, err := reg.Open(context.Background(), "amqp", &sectionConfig{}, transports.Deps{})
	var ce *millrace.ConfigError
	if !errors.As(err, &ce) || ce.Key != "transport.amqp.port" {
		t.Fatalf("err = %v, want a ConfigError for transport.amqp.port", err)
	}
	if _, err := reg.Open(context.Background(), "amqp", &sectionConfig{Port: 5672}, transports.Deps{}); err != nil || !opened {
		t.Fatalf("Open = %v (opened %v)", err, opened)
	}
}

func TestRegistry_NamesAndDefaults(t *testing.T) {
	var opened bool
	reg, _ := transports.NewRegistry(kind("b", &opened), kind("a", &opened))
	if got := strings.Join(reg.Names(), ","); got != "a,b" {
		t.Errorf("Names = %s", got)
	}
	defs := reg.DefaultConfigs()
	if len(defs) != 2 || defs["a"].(*sectionConfig).Port != 1 || defs["a"] == reg.DefaultConfigs()["a"] {
		t.Errorf("DefaultConfigs must return fresh defaults per call: %v", defs)
	}
}

func TestEnsureUUID(t *testing.T) {
	cases := []struct {
		name, id, source, key string
		want                  string
		set                   bool
	}{
		{name: "keeps an id", id: "abc", source: "kafka", key: "t/0/1", want: "abc"},
		{name: "stable key", source: "kafka", key: "orders/3/42", want: "kafka:orders/3/42", set: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := message.NewMessage(c.id, nil)
			if got := transports.EnsureUUID(m, c.source, c.key); got != c.set || m.UUID != c.want {
				t.Fatalf("EnsureUUID = %v, UUID %q; want %v, %q", got, m.UUID, c.set, c.want)
			}
		})
	}
	t.Run("random without key", func(t *testing.T) {
		a, b := message.NewMessage("", nil), message.NewMessage("", nil)
		transports.EnsureUUID(a, "amqp", "")
		transports.EnsureUUID(b, "amqp", "")
		if a.UUID == "" || a.UUID == b.UUID {
			t.Fatalf("random ids %q, %q: want distinct, non-empty", a.UUID, b.UUID)
		}
	})
}

// kindConfig is the config section of the kind NewKind builds in the tests.
type kindConfig struct{ URL string }

type fakeTransport struct{ transports.Transport }

func TestNewKind_OpensWithTheConfigAndDefaultDeps(t *testing.T) {
	var got kindConfig
	var gotDeps transports.Deps
	k := transports.NewKind("fake", func() *kindConfig { return &kindConfig{URL: "fake://default"} },
		func(_ context.Context, cfg kindConfig, deps transports.Deps) (*fakeTransport, error) {
			got, gotDeps = cfg, deps
			return &fakeTransport{}, nil
		})
	if k.Name != "fake" {
		t.Errorf("Name = %q", k.Name)
	}
	cfg, ok := k.DefaultConfig().(*kindConfig)
	if !ok || cfg.URL != "fake://default" || cfg == k.DefaultConfig() {
		t.Fatalf("DefaultConfig = %#v, want a new *kindConfig with defaults per call", k.DefaultConfig())
	}
	cfg.URL = "fake://set"
	tr, err := k.Open(context.Background(), cfg, transports.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tr.(*fakeTransport); !ok || got.URL != "fake://set" || gotDeps.Logger == nil {
		t.Errorf("Open = %T, opened with %+v and logger %v; want the config given and a default logger", tr, got, gotDeps.Logger)
	}
}

func TestNewKind_OpenErrors(t *testing.T) {
	boom := errors.New("boom")
	k := transports.NewKind("fake", func() *kindConfig { return &kindConfig{} },
		func(_ context.Context, cfg kindConfig, _ transports.Deps) (*fakeTransport, error) {
			if cfg.URL == "" {
				return nil, boom
			}
			return &fakeTransport{}, nil
		})
	tests := []struct {
		name string
		cfg  any
		want string
	}{
		{"other type", &sectionConfig{}, `transport kind "fake": config is *transports_test.sectionConfig, must be a non-nil *transports_test.kindConfig`},
		{"value, not pointer", kindConfig{URL: "x"}, "config is transports_test.kindConfig"},
		{"nil pointer", (*kindConfig)(nil), "config is *transports_test.kindConfig, must be a non-nil"},
		{"nil", nil, "config is <nil>"},
		{"open fails", &kindConfig{}, "boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := k.Open(context.Background(), tt.cfg, transports.Deps{})
			if tr != nil || err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Open = %v, %v; want nil and an error with %q", tr, err, tt.want)
			}
		})
	}
}

func TestValidateKind(t *testing.T) {
	known := []string{"memory", "amqp", "kafka"}
	tests := []struct {
		name    string
		kind    string
		section any
		key     string // of the ConfigError wanted; "" for none
		problem string
	}{
		{name: "known, valid", kind: "amqp", section: &sectionConfig{Port: 1}},
		{name: "known, no section", kind: "amqp"},
		{name: "known, section without Validate", kind: "kafka", section: &kindConfig{}},
		{name: "unknown", kind: "kafak", section: &sectionConfig{}, key: "transport.kind", problem: "unknown transport kind; known kinds: amqp, kafka, memory"},
		{name: "invalid section", kind: "amqp", section: &sectionConfig{}, key: "transport.amqp.port", problem: "must be greater than 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := transports.ValidateKind(tt.kind, known, tt.section)
			if tt.key == "" {
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
				return
			}
			var ce *millrace.ConfigError
			if !errors.As(err, &ce) || ce.Key != tt.key || ce.Problem != tt.problem {
				t.Fatalf("err = %v, want a ConfigError for %s: %s", err, tt.key, tt.problem)
			}
		})
	}
	if !slices.Equal(known, []string{"memory", "amqp", "kafka"}) {
		t.Errorf("ValidateKind reordered its argument: %v", known)
	}
}
