package framework_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/millrace/millrace/framework"
	"github.com/millrace/millrace/transports"
)

// failingBacklog is a transport whose Backlog fails while down is set.
type failingBacklog struct {
	transports.Transport
	down *atomic.Bool
}

func (f failingBacklog) Backlog(ctx context.Context, topic, group string) (int64, error) {
	if f.down.Load() {
		return 0, errors.New("broker management API unreachable")
	}
	return f.Transport.(transports.Backlogger).Backlog(ctx, topic, group)
}

// A backlog the transport cannot tell at scrape time is left out of
// /metrics and logged once per streak of failing scrapes, not silently.
func TestMetrics_ScrapeErrorsAreLoggedOncePerStreak(t *testing.T) {
	var down atomic.Bool
	var log syncBuffer
	app := newAppOn(t, "observability:\n  addr: 127.0.0.1:0\n"+noStack, &log, func(tr transports.Transport) transports.Transport {
		return failingBacklog{Transport: tr, down: &down}
	})
	framework.Handle(app, "work", "jobs", noop)
	if err := app.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	warnings := func() int { return strings.Count(log.String(), "cannot read backlog sizes") }
	if v := value(scrape(t, app), "millrace_consumer_backlog", "handler", "work"); v != 0 {
		t.Fatalf("backlog = %v, want 0", v)
	}
	down.Store(true)
	for range 3 {
		if v := value(scrape(t, app), "millrace_consumer_backlog", "handler", "work"); v != -1 {
			t.Errorf("backlog = %v while the transport cannot tell, want none", v)
		}
	}
	if n := warnings(); n != 1 || !strings.Contains(log.String(), "broker management API unreachable") {
		t.Errorf("%d warnings after 3 failing scrapes, want 1 naming the error; log:\n%s", n, log.String())
	}
	down.Store(false)
	scrape(t, app)
	down.Store(true)
	scrape(t, app)
	if n := warnings(); n != 2 {
		t.Errorf("%d warnings after a second streak, want 2", n)
	}
}
