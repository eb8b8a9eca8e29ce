package sql

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
)

func TestSubscriptionLogger(t *testing.T) {
	cases := []struct {
		name    string
		ending  bool
		delayed bool
		log     func(watermill.LoggerAdapter)
		level   slog.Level // lowest level the line appears at; 0 with none means never
		want    []string
		notAt   []string // absent from the line above debug
	}{
		{
			name:  "closing lines are debug",
			log:   func(l watermill.LoggerAdapter) { l.Info("Discarding queued message, subscriber closing", nil) },
			level: slog.LevelDebug,
			want:  []string{"topic=orders", "group=billing", "subscriber_id=01ABC"},
		},
		{
			name:  "an ack deadline that passed is a warning",
			log:   func(l watermill.LoggerAdapter) { l.Info(wsqlDiscardCancelled, watermill.LogFields{"msg_uuid": "m1"}) },
			level: slog.LevelWarn,
			want:  []string{"ack_deadline", "topic=orders", "group=billing", "msg_uuid=m1"},
			notAt: []string{"subscriber_id", "consumer_group"},
		},
		{
			name:   "a cancelled context while ending is debug",
			ending: true,
			log:    func(l watermill.LoggerAdapter) { l.Info(wsqlDiscardCancelled, nil) },
			level:  slog.LevelDebug,
		},
		{
			name:  "errors stay errors, in the user's names",
			log:   func(l watermill.LoggerAdapter) { l.Error("Error querying for message", errors.New("boom"), nil) },
			level: slog.LevelError,
			want:  []string{"topic=orders", "group=billing", "error=boom"},
			notAt: []string{"subscriber_id", "consumer_group", "__group"},
		},
		{
			name:    "the delayed messages' subscription names the topic, not its table",
			delayed: true,
			log:     func(l watermill.LoggerAdapter) { l.Error("Error querying for message", errors.New("boom"), nil) },
			level:   slog.LevelError,
			want:    []string{"topic=orders", "group=billing", "delayed=true"},
			notAt:   []string{"__group"},
		},
		{
			name:   "errors while ending are debug",
			ending: true,
			log: func(l watermill.LoggerAdapter) {
				l.Error("could not query message", errors.New("context canceled"), nil)
			},
			level: slog.LevelDebug,
			want:  []string{"subscription ending"},
		},
		{
			name: "a failed rollback is debug",
			log: func(l watermill.LoggerAdapter) {
				l.Error("could not rollback tx for querying message", errors.New("conn closed"), nil)
			},
			level: slog.LevelDebug,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, at := range []slog.Level{watermill.LevelTrace, slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError} {
				var buf bytes.Buffer
				l := &subscriptionLogger{
					log:     slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: at})),
					topic:   "orders",
					group:   "billing",
					delayed: c.delayed,
					ending:  func() bool { return c.ending },
				}
				table := "orders"
				if c.delayed {
					table = "orders.__group.billing"
				}
				// As watermill-sql builds its loggers.
				wl := l.With(watermill.LogFields{"subscriber_id": "01ABC"}).
					With(watermill.LogFields{"topic": table, "consumer_group": "billing"})
				c.log(wl)
				line := buf.String()
				if shown := at <= c.level; shown != (line != "") {
					t.Fatalf("logger at %v: got %q, want a line: %v", at, line, shown)
				}
				if line == "" {
					continue
				}
				if !strings.Contains(line, "level="+c.level.String()) {
					t.Errorf("line %q not at %v", line, c.level)
				}
				for _, w := range c.want {
					if at <= slog.LevelDebug || !strings.Contains(w, "subscriber_id") {
						if !strings.Contains(line, w) {
							t.Errorf("line %q lacks %q", line, w)
						}
					}
				}
				if at > slog.LevelDebug {
					for _, n := range c.notAt {
						if strings.Contains(line, n) {
							t.Errorf("line %q at %v has %q", line, at, n)
						}
					}
				}
			}
		})
	}
}
