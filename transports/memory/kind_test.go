package memory_test

import (
	"errors"
	"testing"
	"testing/synctest"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/transports"
	"github.com/millrace/millrace/transports/memory"
	"github.com/millrace/millrace/transports/transporttest"
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
		ch := transporttest.Subscribe(t, t.Context(), sub, "orders")
		if err := tr.Publisher().Publish("orders", msg("m0", "")); err != nil {
			t.Fatal(err)
		}
		if got := transporttest.ReceiveIDs(t, ch, 1, wait); got[0] != "m0" {
			t.Errorf("got %v, want [m0]", got)
		}

		if err := tr.Close(); err != nil {
			t.Fatal(err)
		}
		assertClosed(t, ch)
		if err := tr.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if _, err := tr.Subscriber("billing"); !errors.Is(err, transports.ErrClosed) {
			t.Errorf("Subscriber after Close: %v, want ErrClosed", err)
		}
		if err := tr.Publisher().Publish("orders", msg("m1", "")); !errors.Is(err, transports.ErrClosed) {
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

func TestKindOn_ServicesShareTheBroker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := memory.New(*memory.DefaultConfig(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		reg, err := transports.NewRegistry(memory.KindOn(b))
		if err != nil {
			t.Fatal(err)
		}
		open := func() transports.Transport {
			tr, err := reg.Open(t.Context(), "memory", reg.DefaultConfigs()["memory"], transports.Deps{})
			if err != nil {
				t.Fatal(err)
			}
			return tr
		}
		billing, shipping := open(), open()
		chB := transporttest.Subscribe(t, t.Context(), must(billing.Subscriber("billing")), "orders")
		chS := transporttest.Subscribe(t, t.Context(), must(shipping.Subscriber("shipping")), "orders")
		if err := billing.Publisher().Publish("orders", msg("m0", "")); err != nil {
			t.Fatal(err)
		}
		if got := transporttest.ReceiveIDs(t, chB, 1, wait); got[0] != "m0" {
			t.Errorf("billing got %v, want [m0]", got)
		}
		if got := transporttest.ReceiveIDs(t, chS, 1, wait); got[0] != "m0" {
			t.Errorf("shipping got %v, want [m0]", got)
		}

		// Closing one service's transport leaves the broker to the others.
		if err := billing.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := billing.Subscriber("billing"); !errors.Is(err, transports.ErrClosed) {
			t.Errorf("Subscriber after Close: %v, want ErrClosed", err)
		}
		if err := shipping.Publisher().Publish("orders", msg("m1", "")); err != nil {
			t.Fatal(err)
		}
		if got := transporttest.ReceiveIDs(t, chS, 1, wait); got[0] != "m1" {
			t.Errorf("shipping got %v after billing closed, want [m1]", got)
		}
		if err := shipping.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestOpen_CallsAfterCloseFailWithErrClosed(t *testing.T) {
	tr, err := memory.Open(t.Context(), *memory.DefaultConfig(), transports.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	transporttest.CheckClosed(t, tr, "orders", "billing")
}

// A transport on a shared broker closes the subscribers it made; once the
// broker is closed, no more transports open on it.
func TestKindOn_ClosedErrors(t *testing.T) {
	b, err := memory.New(*memory.DefaultConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := transports.NewRegistry(memory.KindOn(b))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := reg.Open(t.Context(), "memory", memory.DefaultConfig(), transports.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	sub := must(tr.Subscriber("billing"))
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.Subscribe(t.Context(), "orders"); !errors.Is(err, transports.ErrClosed) {
		t.Errorf("Subscribe after the transport's Close: %v, want ErrClosed", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Open(t.Context(), "memory", memory.DefaultConfig(), transports.Deps{}); !errors.Is(err, transports.ErrClosed) {
		t.Errorf("Open on a closed broker: %v, want ErrClosed", err)
	}
}
