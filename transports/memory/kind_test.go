package memory_test

import (
	"errors"
	"testing"
	"testing/synctest"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/transports"
	"github.com/millrace/millrace/transports/memory"
)

func TestKind_OpensWorkingTransport(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg, err := transports.NewRegistry(memory.Kind())
		if err != nil {
			t.Fatal(err)
		}
		cfg := reg.DefaultConfigs()["memory"]
		if _, ok := cfg.(*memory.Config); !ok {
			t.Fatalf("default config is %T, want *memory.Config", cfg)
		}
		tr, err := reg.Open(t.Context(), "memory", cfg, transports.Deps{})
		if err != nil {
			t.Fatal(err)
		}
		sub, err := tr.Subscriber("billing")
		if err != nil {
			t.Fatal(err)
		}
		ch := subscribe(t, t.Context(), sub, "orders")
		if err := tr.Publisher().Publish("orders", msg("m0", "")); err != nil {
			t.Fatal(err)
		}
		if got := receiveAcked(t, ch, 1); got[0] != "m0" {
			t.Errorf("got %v, want [m0]", got)
		}

		if err := tr.Close(); err != nil {
			t.Fatal(err)
		}
		assertClosed(t, ch)
		if err := tr.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if _, err := tr.Subscriber("billing"); !errors.Is(err, memory.ErrClosed) {
			t.Errorf("Subscriber after Close: %v, want ErrClosed", err)
		}
		if err := tr.Publisher().Publish("orders", msg("m1", "")); !errors.Is(err, memory.ErrClosed) {
			t.Errorf("Publish after Close: %v, want ErrClosed", err)
		}
	})
}

func TestKind_InvalidConfigNamesKey(t *testing.T) {
	reg, err := transports.NewRegistry(memory.Kind())
	if err != nil {
		t.Fatal(err)
	}
	cfg := memory.DefaultConfig()
	cfg.Retention = -1
	_, err = reg.Open(t.Context(), "memory", cfg, transports.Deps{})
	var ce *millrace.ConfigError
	if !errors.As(err, &ce) || ce.Key != "transport.memory.retention" {
		t.Errorf("Open with bad retention: %v, want ConfigError for transport.memory.retention", err)
	}
}

func TestKind_WrongConfigTypeIsError(t *testing.T) {
	if _, err := memory.Kind().Open(t.Context(), memory.Config{}, transports.Deps{}); err == nil {
		t.Error("Open with a non-pointer config succeeded")
	}
}
