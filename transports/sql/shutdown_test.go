package sql_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/framework"
)

// TestShutdown_SettlesEveryAckBeforeClosing stops an App of a service in
// the middle of a backlog of a few thousand messages, handled by 8
// subscriptions at once, and lets a second App of the same service consume
// the rest: no message the first App handled is handled again by the
// second. Several rounds, on both databases, through config as a service
// opens its transport (framework.Parse, framework.OpenTransport,
// framework.New).
func TestShutdown_SettlesEveryAckBeforeClosing(t *testing.T) {
	const (
		total  = 3000
		rounds = 3
	)
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cfg := testConfig(t, b)
			for round := range rounds {
				topic := fmt.Sprintf("stop_%d_%s", round, watermill.NewShortUUID())
				service := "stopsvc" + strings.ToLower(watermill.NewShortUUID()[:6])
				env := []string{
					"MILLRACE_TRANSPORT_KIND=" + b.name,
					"MILLRACE_SERVICE_NAME=" + service,
					"MILLRACE_TRANSPORT_" + strings.ToUpper(b.name) + "_DSN=" + cfg.DSN,
					"MILLRACE_TRANSPORT_" + strings.ToUpper(b.name) + "_TABLE_PREFIX=" + cfg.TablePrefix,
				}
				first := newRecordingApp(t, env, topic)
				ids := make([]*message.Message, 0, total)
				for i := range total {
					ids = append(ids, message.NewMessage(fmt.Sprintf("m%05d-%s", i, topic), []byte(`{}`)))
				}
				for i := 0; i < total; i += 100 {
					if err := first.app.Publisher().Publish(topic, ids[i:i+100]...); err != nil {
						t.Fatal(err)
					}
				}
				first.start(t)
				first.waitFor(t, total/3+37) // in the middle of a batch
				if err := first.app.Stop(context.Background()); err != nil {
					t.Fatalf("round %d: stop the first App: %v", round, err)
				}
				byFirst := first.snapshot()

				second := newRecordingApp(t, env, topic)
				second.start(t)
				deadline := time.Now().Add(2 * time.Minute)
				for {
					got := second.snapshot()
					missing := 0
					for _, m := range ids {
						if byFirst[m.UUID] == 0 && got[m.UUID] == 0 {
							missing++
						}
					}
					if missing == 0 {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("round %d: %d messages handled by neither App", round, missing)
					}
					time.Sleep(50 * time.Millisecond)
				}
				time.Sleep(300 * time.Millisecond) // redeliveries would come within a few polls
				if err := second.app.Stop(context.Background()); err != nil {
					t.Fatal(err)
				}
				bySecond := second.snapshot()
				var again, twice []string
				for id := range byFirst {
					if bySecond[id] > 0 {
						again = append(again, id)
					}
				}
				for id, n := range bySecond {
					if n > 1 {
						twice = append(twice, id)
					}
				}
				t.Logf("round %d: first App handled %d, second %d, %d by both", round, len(byFirst), len(bySecond), len(again))
				if len(again) > 0 {
					t.Errorf("round %d: %d messages handled by the first App were handled again by the second, e.g. %v", round, len(again), again[:min(5, len(again))])
				}
				if len(twice) > 0 {
					t.Errorf("round %d: %d messages handled twice by the second App", round, len(twice))
				}
			}
		})
	}
}

// recordingApp is an App whose one handler, 8 subscriptions of one group,
// records the id of every message it handled.
type recordingApp struct {
	app *framework.App

	mu      sync.Mutex
	handled map[string]int
}

func newRecordingApp(t *testing.T, env []string, topic string) *recordingApp {
	t.Helper()
	reg, err := framework.Transports()
	if err != nil {
		t.Fatal(err)
	}
	const base = `
handlers:
  concurrency: 8
middleware:
  dedup:
    enabled: false
shutdown:
  timeout: 30s
`
	cfg, err := framework.Parse([]byte(base), env, reg)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	tr, closeTransport, err := framework.OpenTransport(context.Background(), cfg, reg, logger)
	if err != nil {
		t.Fatal(err)
	}
	app, err := framework.New(cfg, logger, tr)
	if err != nil {
		closeTransport()
		t.Fatal(err)
	}
	r := &recordingApp{app: app, handled: map[string]int{}}
	framework.HandleRaw(app, "work", topic, func(msg *message.Message) ([]*message.Message, error) {
		time.Sleep(time.Millisecond) // in flight long enough for Stop to find some
		r.mu.Lock()
		r.handled[msg.UUID]++
		r.mu.Unlock()
		return nil, nil
	})
	t.Cleanup(func() {
		_ = app.Stop(context.Background())
		closeTransport()
	})
	return r
}

func (r *recordingApp) start(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.app.Start(ctx); err != nil {
		t.Fatal(err)
	}
}

// waitFor waits until n distinct messages were handled.
func (r *recordingApp) waitFor(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		r.mu.Lock()
		got := len(r.handled)
		r.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages handled", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *recordingApp) snapshot() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.handled))
	for k, v := range r.handled {
		out[k] = v
	}
	return out
}
