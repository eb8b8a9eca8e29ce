package middleware_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/middleware"
)

// configErrors returns "key=value" for every *millrace.ConfigError in err's
// tree (through %w wrapping and errors.Join), in order.
func configErrors(err error) []string {
	var found []string
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case *millrace.ConfigError:
			found = append(found, e.Key+"="+e.Value)
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				walk(inner)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	if err != nil {
		walk(err)
	}
	return found
}

// checkConfigErrors fails t unless err holds exactly the ConfigErrors want
// ("key=value", in order), and is nil when want is.
func checkConfigErrors(t *testing.T, err error, want []string) {
	t.Helper()
	if (err != nil) != (want != nil) {
		t.Fatalf("error %v, want config errors %v", err, want)
	}
	if got := configErrors(err); !slices.Equal(got, want) {
		t.Errorf("config errors %v, want %v (all at once) in %v", got, want, err)
	}
}

func TestDelayedRetryConfig_Validate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  middleware.DelayedRetryConfig
		want []string
	}{
		{"defaults", middleware.DefaultDelayedRetryConfig(), nil},
		{"one round", middleware.DelayedRetryConfig{Delays: []time.Duration{time.Second}}, nil},
		{"no rounds", middleware.DelayedRetryConfig{}, []string{"delays=[]"}},
		{"bad rounds", middleware.DelayedRetryConfig{Delays: []time.Duration{time.Second, 0, time.Minute, -time.Second}},
			[]string{"delays[1]=0s", "delays[3]=-1s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkConfigErrors(t, tc.cfg.Validate(), tc.want)
			d, err := middleware.NewDelayedRetry(tc.cfg, &publishingDelayer{})
			checkConfigErrors(t, err, tc.want)
			if (d == nil) != (tc.want != nil) {
				t.Errorf("NewDelayedRetry returned %v with error %v", d, err)
			}
		})
	}
}

func TestNewDelayedRetry_ReportsNilDelayerWithConfigErrors(t *testing.T) {
	d, err := middleware.NewDelayedRetry(middleware.DelayedRetryConfig{}, nil)
	if d != nil || err == nil || !strings.Contains(err.Error(), "nil Delayer") {
		t.Fatalf("got %v, %v; want an error naming the nil Delayer", d, err)
	}
	checkConfigErrors(t, err, []string{"delays=[]"})
}

func TestNewDelayedRetry_KeepsItsOwnDelays(t *testing.T) {
	cfg := middleware.DelayedRetryConfig{Delays: []time.Duration{time.Second}}
	delayer := &publishingDelayer{}
	d, err := middleware.NewDelayedRetry(cfg, delayer)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Delays[0] = time.Hour // the caller's slice, changed afterwards
	h := d.Middleware(func(*message.Message) ([]*message.Message, error) { return nil, errDown })
	if _, err := h(newMsg(t.Context())); err != nil {
		t.Fatalf("got %v, want nil: the message is scheduled", err)
	}
	if calls := delayer.scheduled(); len(calls) != 1 || calls[0].delay != time.Second {
		t.Errorf("scheduled %+v, want one call after 1s", calls)
	}
}

func TestNewPoisonQueue_RejectsNilPublisher(t *testing.T) {
	p, err := middleware.NewPoisonQueue(middleware.DefaultPoisonConfig(), nil)
	if p != nil || err == nil || !strings.Contains(err.Error(), "nil Publisher") {
		t.Fatalf("got %v, %v; want an error naming the nil Publisher", p, err)
	}
	pubSub := gochannel.NewGoChannel(gochannel.Config{}, nil)
	defer pubSub.Close()
	if _, err := middleware.NewPoisonQueue(middleware.DefaultPoisonConfig(), pubSub); err != nil {
		t.Fatal(err)
	}
	if err := middleware.DefaultPoisonConfig().Validate(); err != nil {
		t.Errorf("DefaultPoisonConfig().Validate() = %v", err)
	}
}
