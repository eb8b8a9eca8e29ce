package sql

import (
	"context"
	"errors"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
)

func TestQuietOnStop(t *testing.T) {
	cases := []struct {
		name      string
		stopped   bool
		wantLevel watermill.LogLevel
	}{
		{name: "running: errors stay errors", wantLevel: watermill.ErrorLogLevel},
		{name: "closing: cancelled queries are debug", stopped: true, wantLevel: watermill.DebugLogLevel},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			stop, cancel := context.WithCancel(context.Background())
			defer cancel()
			if c.stopped {
				cancel()
			}
			capture := watermill.NewCaptureLogger()
			l := quietOnStop{LoggerAdapter: capture, stop: stop}.With(watermill.LogFields{"topic": "orders"})
			l.Error("could not query message", errors.New("context canceled"), nil)
			got := capture.Captured()
			if len(got[c.wantLevel]) != 1 {
				t.Fatalf("captured %v, want one line at level %v", got, c.wantLevel)
			}
			if got[c.wantLevel][0].Fields["topic"] != "orders" {
				t.Errorf("fields %v lost With's topic", got[c.wantLevel][0].Fields)
			}
		})
	}
}
