package memory_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/transports/memory"
)

func TestConfig_Validate(t *testing.T) {
	type problem struct{ key, value, problem string }
	tests := []struct {
		name string
		edit func(*memory.Config)
		want []problem
	}{
		{name: "defaults", edit: func(*memory.Config) {}},
		{name: "zero retention", edit: func(c *memory.Config) { c.Retention = 0 }},
		{name: "max equals delay", edit: func(c *memory.Config) { c.MaxRedeliveryDelay = c.RedeliveryDelay }},
		{
			name: "zero redelivery delay",
			edit: func(c *memory.Config) { c.RedeliveryDelay = 0 },
			want: []problem{{"redelivery_delay", "0s", "must be greater than 0"}},
		},
		{
			name: "negative redelivery delay",
			edit: func(c *memory.Config) { c.RedeliveryDelay = -time.Second },
			want: []problem{{"redelivery_delay", "-1s", "must be greater than 0"}},
		},
		{
			name: "max below delay",
			edit: func(c *memory.Config) { c.RedeliveryDelay, c.MaxRedeliveryDelay = time.Second, time.Millisecond },
			want: []problem{{"max_redelivery_delay", "1ms", "must be greater than 0 and at least redelivery_delay (1s)"}},
		},
		{
			name: "negative retention",
			edit: func(c *memory.Config) { c.Retention = -1 },
			want: []problem{{"retention", "-1", "must be 0 or greater"}},
		},
		{
			name: "all wrong",
			edit: func(c *memory.Config) { *c = memory.Config{Retention: -5} },
			want: []problem{
				{"redelivery_delay", "0s", "must be greater than 0"},
				{"max_redelivery_delay", "0s", "must be greater than 0 and at least redelivery_delay (0s)"},
				{"retention", "-5", "must be 0 or greater"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := memory.DefaultConfig()
			tt.edit(cfg)
			err := cfg.Validate()

			var got []problem
			for _, e := range flatten(err) {
				var ce *millrace.ConfigError
				if !errors.As(e, &ce) {
					t.Fatalf("error %v (%T) is not a *millrace.ConfigError", e, e)
				}
				got = append(got, problem{ce.Key, ce.Value, ce.Problem})
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Validate() = %v\nproblems %v\nwant      %v", err, got, tt.want)
			}
			if _, err := memory.New(*cfg, nil); (err != nil) != (tt.want != nil) {
				t.Errorf("New() error = %v, want error: %v", err, tt.want != nil)
			}
		})
	}
}

// flatten returns the errors joined in err, or err alone.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
