package transports_test

import (
	"context"
	"errors"
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
