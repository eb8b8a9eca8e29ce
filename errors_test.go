package millrace_test

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/millrace/millrace"
)

func TestPermanent(t *testing.T) {
	base := errors.New("negative total")
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil stays nil", millrace.Permanent(nil), false},
		{"plain error", base, false},
		{"marked", millrace.Permanent(base), true},
		{"marked then wrapped", fmt.Errorf("order o-1: %w", millrace.Permanent(base)), true},
		{"marked twice", millrace.Permanent(millrace.Permanent(base)), true},
		{"joined with a marked one", errors.Join(io.EOF, millrace.Permanent(base)), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := millrace.IsPermanent(tt.err); got != tt.want {
				t.Errorf("IsPermanent(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
	if millrace.Permanent(nil) != nil {
		t.Error("Permanent(nil) != nil")
	}
	p := millrace.Permanent(base)
	if !errors.Is(p, base) || p.Error() != "negative total" {
		t.Errorf("Permanent hides the cause: %v", p)
	}
}

func TestConfigError(t *testing.T) {
	e := &millrace.ConfigError{Key: "log.level", Value: "loud", Problem: "must be one of: debug, info"}
	if got, want := e.Error(), `config key "log.level": value "loud": must be one of: debug, info`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	noValue := &millrace.ConfigError{Key: "x", Problem: "unknown key"}
	if got, want := noValue.Error(), `config key "x": unknown key`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestPrefixConfigKeys(t *testing.T) {
	a := &millrace.ConfigError{Key: "url", Problem: "required"}
	b := &millrace.ConfigError{Key: "prefetch", Value: "-1", Problem: "must be 0 or greater"}
	other := errors.New("something else")

	got := millrace.PrefixConfigKeys("transport.amqp", errors.Join(a, b, other))
	var keys []string
	for _, e := range got.(interface{ Unwrap() []error }).Unwrap() {
		var ce *millrace.ConfigError
		if errors.As(e, &ce) {
			keys = append(keys, ce.Key)
		} else if e != other {
			t.Errorf("non-config error changed: %v", e)
		}
	}
	if fmt.Sprint(keys) != "[transport.amqp.url transport.amqp.prefetch]" {
		t.Errorf("keys = %v", keys)
	}
	if a.Key != "url" {
		t.Error("PrefixConfigKeys modified its input")
	}
	if millrace.PrefixConfigKeys("x", nil) != nil || millrace.PrefixConfigKeys("", a) != a {
		t.Error("nil error or empty prefix must pass through")
	}
}

func ExamplePermanent() {
	err := fmt.Errorf("handle order o-1: %w", millrace.Permanent(errors.New("negative total")))
	fmt.Println(millrace.IsPermanent(err), err)
	// Output: true handle order o-1: negative total
}

func TestJoinConfigErrors(t *testing.T) {
	a := &millrace.ConfigError{Key: "a", Value: "1", Problem: "bad"}
	b := &millrace.ConfigError{Key: "b", Value: "2", Problem: "bad"}
	if err := millrace.JoinConfigErrors(nil); err != nil {
		t.Errorf("no errors: %v, want nil", err)
	}
	if err := millrace.JoinConfigErrors([]error{a}); err != a {
		t.Errorf("one error: %v, want it unchanged", err)
	}
	err := millrace.JoinConfigErrors([]error{a, b})
	if !errors.Is(err, a) || !errors.Is(err, b) {
		t.Errorf("two errors: %v, want both joined", err)
	}
}
