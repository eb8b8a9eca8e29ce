package transports_test

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/millrace/millrace/transports"
)

func TestWatermillLogger_Levels(t *testing.T) {
	tests := []struct {
		level      slog.Level
		wantLogged []string
		wantGone   []string
	}{
		{slog.LevelInfo, []string{"info line", "error line"}, []string{"debug line", "trace line"}},
		{slog.LevelDebug, []string{"info line", "debug line"}, []string{"trace line"}},
		{watermill.LevelTrace, []string{"debug line", "trace line"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.level.String(), func(t *testing.T) {
			var buf bytes.Buffer
			l := transports.WatermillLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: tt.level})))
			l = l.With(watermill.LogFields{"component": "test"})
			f := watermill.LogFields{"field": "v"}
			l.Trace("trace line", f)
			l.Debug("debug line", f)
			l.Info("info line", f)
			l.Error("error line", nil, f)
			out := buf.String()
			for _, want := range tt.wantLogged {
				if !strings.Contains(out, want) {
					t.Errorf("%q missing from:\n%s", want, out)
				}
			}
			for _, gone := range tt.wantGone {
				if strings.Contains(out, gone) {
					t.Errorf("%q logged at level %v:\n%s", gone, tt.level, out)
				}
			}
			if !strings.Contains(out, "component=test") {
				t.Errorf("With's fields missing:\n%s", out)
			}
		})
	}
}

// A trace or debug line below the logger's level costs nothing: Watermill's
// adapters log several per message.
func TestWatermillLogger_DisabledLinesDoNotAllocate(t *testing.T) {
	l := transports.WatermillLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	fields := watermill.LogFields{"topic": "orders", "partition": 3, "offset": 42}
	if n := testing.AllocsPerRun(100, func() {
		l.Trace("message received", fields)
		l.Debug("message acked", fields)
	}); n != 0 {
		t.Errorf("%v allocations per disabled line pair, want 0", n)
	}
}
