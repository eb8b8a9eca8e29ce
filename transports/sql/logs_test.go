package sql_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/millrace/millrace/framework"
)

type greeting struct {
	Name string `json:"name"`
}

// A clean run of a service (start, publish, consume, stop) logs at info
// level what an operator needs, the framework's lines about the service
// and its handlers, and nothing of the transport's inner workings: no
// line per subscription at shutdown, no private topic names. Debug keeps
// the detail.
func TestLogs_CleanRunSaysOnlyWhatAnOperatorNeeds(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cfg := testConfig(t, b)
			service := "ncsvc" + strings.ToLower(watermill.NewShortUUID()[:4])
			env := []string{
				"MILLRACE_TRANSPORT_KIND=" + b.name,
				"MILLRACE_SERVICE_NAME=" + service,
				"MILLRACE_TRANSPORT_" + strings.ToUpper(b.name) + "_DSN=" + cfg.DSN,
				"MILLRACE_TRANSPORT_" + strings.ToUpper(b.name) + "_TABLE_PREFIX=" + cfg.TablePrefix,
				"MILLRACE_HANDLERS_CONCURRENCY=2",
			}
			reg, err := framework.Transports()
			if err != nil {
				t.Fatal(err)
			}
			fc, err := framework.Parse(nil, env, reg)
			if err != nil {
				t.Fatal(err)
			}
			logs := newLogRecorder(slog.LevelDebug)
			logger := slog.New(logs)
			tr, closeTransport, err := framework.OpenTransport(context.Background(), fc, reg, logger)
			if err != nil {
				t.Fatal(err)
			}
			defer closeTransport()
			app, err := framework.New(fc, logger, tr)
			if err != nil {
				t.Fatal(err)
			}
			got := make(chan string, 10)
			framework.Handle(app, "greet", "greet.commands", func(_ context.Context, g greeting) error {
				got <- "greet " + g.Name
				return nil
			})
			framework.Handle(app, "replies", "greet.replies", func(_ context.Context, g greeting) error {
				got <- "reply " + g.Name
				return nil
			}, framework.Ephemeral())
			if err := app.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			for topic, name := range map[string]string{"greet.commands": "ada", "greet.replies": "alan"} {
				if err := app.Publish(context.Background(), topic, greeting{Name: name}); err != nil {
					t.Fatal(err)
				}
			}
			var handled []string
			for range 2 {
				select {
				case h := <-got:
					handled = append(handled, h)
				case <-time.After(10 * time.Second):
					t.Fatalf("handled %v", handled)
				}
			}
			if err := app.Stop(context.Background()); err != nil {
				t.Fatal(err)
			}

			var info, detail []string
			for _, l := range logs.Lines() {
				if strings.HasPrefix(l, "DEBUG") {
					detail = append(detail, l)
				} else {
					info = append(info, l)
				}
			}
			wantInfo := []string{"INFO handler started", "INFO service started", "INFO service stopped"}
			for _, l := range info {
				if !slices.ContainsFunc(wantInfo, func(w string) bool { return strings.HasPrefix(l, w+" ") }) {
					t.Errorf("logged at info or above: %s", l)
				}
				if strings.Contains(l, "__group") {
					t.Errorf("an internal topic name at info: %s", l)
				}
			}
			if !hasLine(detail, "greet.commands.__group."+service+".greet", "subscriber_id") {
				t.Errorf("debug lost the detail (private topic, subscriber id):\n%s", strings.Join(detail, "\n"))
			}
		})
	}
}
