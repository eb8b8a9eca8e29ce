package framework_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/millrace/millrace/framework"
	"github.com/millrace/millrace/transports/transporttest"
)

func TestDedupStore_ThatDoesNotAnswerFailsTheStart(t *testing.T) {
	addr := transporttest.SilentServer(t)
	tests := []struct {
		store, dsn string
	}{
		{"postgres", "postgres://app:hunter2@" + addr + "/test?sslmode=disable"},
		{"mysql", "app:hunter2@tcp(" + addr + ")/test"},
		{"redis", "redis://:hunter2@" + addr + "/0"},
	}
	for _, tt := range tests {
		t.Run(tt.store, func(t *testing.T) {
			app := newApp(t, "middleware:\n  dedup:\n    store: "+tt.store+"\n    dsn: '"+tt.dsn+"'\n    connect_timeout: 300ms\n")
			framework.Handle(app, "h", "t", func(context.Context, Job) error { return nil })
			start := time.Now()
			err := app.Start(context.Background())
			took := time.Since(start)
			if err == nil {
				t.Fatal("Start succeeded with a dedup store that never answers")
			}
			if testing.Verbose() {
				t.Log(err)
			}
			for _, want := range []string{"middleware.dedup.connect_timeout", "300ms", addr, "dedup store " + tt.store} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q shows the password", err)
			}
			if took > 5*time.Second {
				t.Errorf("Start took %v to give up, want about the 300ms connect_timeout", took)
			}
		})
	}
}

func TestDedupStore_FailOpenStartsDegradedAndSaysSo(t *testing.T) {
	addr := transporttest.SilentServer(t)
	var log strings.Builder
	var mu sync.Mutex
	app := newAppWithLog(t, "middleware:\n  dedup:\n    store: redis\n    dsn: redis://"+addr+"/0\n    connect_timeout: 200ms\n    fail_open: true\n", lockedWriter{&mu, &log})
	framework.Handle(app, "h", "t", func(context.Context, Job) error { return nil })
	if err := app.Start(context.Background()); err != nil {
		t.Fatalf("Start with fail_open: %v", err)
	}
	if d := app.Degraded(); len(d) != 1 || !strings.Contains(d[0], "dedup store redis") {
		t.Errorf("Degraded() = %q, want the dedup store", d)
	}
	mu.Lock()
	logged := log.String()
	mu.Unlock()
	if strings.Count(logged, "WITHOUT deduplication") != 1 || !strings.Contains(logged, "level=ERROR") {
		t.Errorf("want one loud line about running without deduplication; log:\n%s", logged)
	}
	if err := app.Stop(context.Background()); err != nil {
		t.Errorf("stop: %v", err)
	}
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
