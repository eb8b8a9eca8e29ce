package main

import (
	"strings"
	"sync"
	"testing"
)

type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// TestRun_PlacesEveryOrderAndExits runs the quickstart as the README does:
// default config, in-memory transport; it must return on its own.
func TestRun_PlacesEveryOrderAndExits(t *testing.T) {
	t.Setenv("MILLRACE_LOG_LEVEL", "warn")
	var out lockedBuilder
	if err := run("", 5, &out); err != nil {
		t.Fatal(err)
	}
	got := out.b.String()
	for _, want := range []string{
		"client: PlaceOrder order-1 for ada",
		"notify-customer: order order-5 placed, emailing ada (22.50 EUR)",
		"done: 5 orders placed and notified",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "notify-customer:"); n != 5 {
		t.Errorf("%d notifications, want 5:\n%s", n, got)
	}
}
