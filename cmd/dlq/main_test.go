package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.uber.org/goleak"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/framework"
	"github.com/millrace/millrace/transports"
	"github.com/millrace/millrace/transports/memory"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The tests drive command.run, the whole command but for how the transport
// is opened: an in-memory broker opened by the command would be empty, so
// seeded() hands it one the test filled. TestRun_OpensConfiguredTransport
// runs run itself, on a fresh (empty) memory broker.

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// poison returns a message as the poison queue sets it aside.
func poison(id, handler, topic, reason string, lastFailed time.Time) *message.Message {
	m := message.NewMessage(id, []byte(id))
	m.Metadata.Set(millrace.MetadataPoisonHandler, handler)
	m.Metadata.Set(millrace.MetadataPoisonTopic, topic)
	m.Metadata.Set(millrace.MetadataPoisonReason, reason)
	m.Metadata.Set(millrace.MetadataPoisonAttempts, "5")
	m.Metadata.Set(millrace.MetadataPoisonLastFailedAt, lastFailed.Format(time.RFC3339))
	m.Metadata.Set(millrace.MetadataRetryAttempts, "3")
	return m
}

// seeded returns a command whose transport is tr, an open memory transport
// whose poison topic shop.poison holds three entries, then extra.
func seeded(t *testing.T, extra ...*message.Message) (command, transports.Transport) {
	t.Helper()
	tr, err := memory.Kind().Open(t.Context(), memory.DefaultConfig(), transports.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	for _, m := range append([]*message.Message{
		poison("p1", "place-order", "orders.commands", "inventory: connection refused", t0.Add(time.Minute)),
		poison("p2", "notify", "orders.events", "smtp:\n\tmailbox full", t0.Add(2*time.Minute)),
		poison("p3", "place-order", "", "no topic", t0.Add(3*time.Minute)),
	}, extra...) {
		if err := tr.Publisher().Publish("shop.poison", m); err != nil {
			t.Fatal(err)
		}
	}
	c := command{
		transports: framework.Transports,
		open: func(context.Context, *framework.Config, *transports.Registry, *slog.Logger) (transports.Transport, func(), error) {
			return tr, func() {}, nil
		},
	}
	return c, tr
}

// writeConfig writes a config file and returns its path.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "service.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

type result struct {
	code           int
	stdout, stderr string
}

func (c command) exec(t *testing.T, env []string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := c.run(t.Context(), args, env, &out, &errOut)
	return result{code, out.String(), errOut.String()}
}

func TestList(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		want     []string // lines of stdout starting with these
		wantNone bool
	}{
		{name: "all", args: []string{"list"}, want: []string{"p1 ", "p2 ", "p3 "}},
		{name: "handler", args: []string{"list", "-handler", "place-order"}, want: []string{"p1 ", "p3 "}},
		{name: "topic", args: []string{"list", "-topic", "orders.events"}, want: []string{"p2 "}},
		{name: "error", args: []string{"list", "-error", "MAILBOX"}, want: []string{"p2 "}},
		{name: "since", args: []string{"list", "-since", "2026-11-23T10:02:00Z"}, want: []string{"p2 ", "p3 "}},
		{name: "until", args: []string{"list", "-until", "2026-11-23T10:02:00Z"}, want: []string{"p1 "}},
		{name: "ids", args: []string{"list", "-id", "p1", "-id", "p3", "-exclude-id", "p3"}, want: []string{"p1 "}},
		{name: "global flags after the command", args: []string{"list", "-poison-topic", "shop.poison", "-handler", "notify"}, want: []string{"p2 "}},
		{name: "other poison topic", args: []string{"-poison-topic", "other.poison", "list"}, wantNone: true},
		{name: "no match", args: []string{"list", "-handler", "ship"}, wantNone: true},
	}
	cfg := writeConfig(t, "service:\n  name: shop\n")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := seeded(t)
			r := c.exec(t, nil, append([]string{"-config", cfg}, tt.args...)...)
			if r.code != exitOK {
				t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
			}
			if tt.wantNone {
				if !strings.HasPrefix(r.stdout, "no matching entries in poison topic") {
					t.Errorf("stdout:\n%s\nwant no matching entries", r.stdout)
				}
				return
			}
			lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
			if !strings.HasPrefix(lines[0], "ID ") || !strings.Contains(lines[0], "LAST FAILURE") {
				t.Errorf("header = %q", lines[0])
			}
			var got []string
			for _, l := range lines[1 : len(lines)-1] {
				got = append(got, l[:3])
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("rows %q, want %q; stdout:\n%s", got, tt.want, r.stdout)
			}
		})
	}
}

func TestList_Row(t *testing.T) {
	c, _ := seeded(t)
	r := c.exec(t, []string{"MILLRACE_SERVICE_NAME=shop"}, "list", "-id", "p2")
	fields := strings.Fields(strings.Split(r.stdout, "\n")[1])
	want := []string{"p2", "notify", "orders.events", "5", "0", "2026-11-23T10:02:00Z", "smtp:", "mailbox", "full"}
	if !slices.Equal(fields, want) {
		t.Errorf("row %q, want %q (multi-line reason on one line)", fields, want)
	}
}

func TestReplay(t *testing.T) {
	c, tr := seeded(t)
	cfg := writeConfig(t, "service:\n  name: shop\n")
	r := c.exec(t, nil, "-config", cfg, "replay", "-handler", "place-order")
	if r.code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	want := "replayed p1 to orders.commands (replay 1)\n" +
		"skipped  p3: " + "no original topic (metadata poison_topic is missing)\n" +
		"1 replayed, 1 skipped from poison topic shop.poison\n"
	if r.stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, want)
	}

	got, err := tr.(interface {
		Browse(context.Context, string) ([]*message.Message, error)
	}).Browse(t.Context(), "orders.commands")
	if err != nil || len(got) != 1 {
		t.Fatalf("orders.commands holds %d messages, %v; want the replayed one", len(got), err)
	}
	m := got[0]
	if m.UUID != "p1" || m.Metadata.Get(millrace.MetadataReplayCount) != "1" ||
		m.Metadata.Get(millrace.MetadataPoisonReason) != "" || m.Metadata.Get(millrace.MetadataRetryAttempts) != "" {
		t.Errorf("replayed %s with metadata %v", m.UUID, m.Metadata)
	}
}

// failedAgain is p1 as the poison queue sets it aside after its first
// replay failed too: same id, replay_count 1, a later failure and another
// reason.
func failedAgain() *message.Message {
	m := poison("p1", "place-order", "orders.commands", "decode PlaceOrder: unexpected field", t0.Add(4*time.Minute))
	m.Metadata.Set(millrace.MetadataReplayCount, "1")
	return m
}

// TestReplayedAndFailedAgain_ListedOnce: a replayed message that failed again is in
// the poison topic twice; list shows it once, with its latest failure, and
// filters see only that failure.
func TestReplayedAndFailedAgain_ListedOnce(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string // rows: id, replays, last failure
	}{
		{name: "all", args: []string{"list"}, want: []string{"p2 0 2026-11-23T10:02:00Z", "p3 0 2026-11-23T10:03:00Z", "p1 1 2026-11-23T10:04:00Z"}},
		{name: "id", args: []string{"list", "-id", "p1"}, want: []string{"p1 1 2026-11-23T10:04:00Z"}},
		{name: "error of the latest failure", args: []string{"list", "-error", "unexpected field"}, want: []string{"p1 1 2026-11-23T10:04:00Z"}},
		{name: "error of an earlier failure", args: []string{"list", "-error", "refused"}},
		{name: "since before the latest failure", args: []string{"list", "-handler", "place-order", "-since", "2026-11-23T10:03:30Z"}, want: []string{"p1 1 2026-11-23T10:04:00Z"}},
		{name: "until after the earlier failure only", args: []string{"list", "-until", "2026-11-23T10:01:30Z"}},
		{name: "topic", args: []string{"list", "-topic", "orders.commands"}, want: []string{"p1 1 2026-11-23T10:04:00Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := seeded(t, failedAgain())
			r := c.exec(t, []string{"MILLRACE_SERVICE_NAME=shop"}, tt.args...)
			if r.code != exitOK {
				t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
			}
			var got []string
			for _, l := range strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n") {
				f := strings.Fields(l)
				if len(f) > 5 && strings.HasPrefix(f[0], "p") {
					got = append(got, f[0]+" "+f[4]+" "+f[5])
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("rows %q, want %q; stdout:\n%s", got, tt.want, r.stdout)
			}
		})
	}
}

func TestReplayedAndFailedAgain_ReplayedOnce(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{
			name: "all",
			args: []string{"replay", "-all"},
			want: "replayed p2 to orders.events (replay 1)\n" +
				"replayed p1 to orders.commands (replay 2)\n" +
				"skipped  p3: no original topic (metadata poison_topic is missing)\n" +
				"2 replayed, 1 skipped from poison topic shop.poison\n",
		},
		{
			name: "filter on the earlier failure",
			args: []string{"replay", "-error", "refused"},
			want: "0 replayed, 0 skipped from poison topic shop.poison\n",
		},
		{
			name: "filter on the latest failure",
			args: []string{"replay", "-error", "unexpected field"},
			want: "replayed p1 to orders.commands (replay 2)\n" +
				"1 replayed, 0 skipped from poison topic shop.poison\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, tr := seeded(t, failedAgain())
			r := c.exec(t, []string{"MILLRACE_SERVICE_NAME=shop"}, tt.args...)
			if r.code != exitOK {
				t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
			}
			if r.stdout != tt.want {
				t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, tt.want)
			}
			got, err := tr.(interface {
				Browse(context.Context, string) ([]*message.Message, error)
			}).Browse(t.Context(), "orders.commands")
			if err != nil {
				t.Fatal(err)
			}
			want := strings.Count(tt.want, "replayed p1 ")
			if len(got) != want {
				t.Fatalf("orders.commands holds %d messages, want %d", len(got), want)
			}
			for _, m := range got {
				if m.UUID != "p1" || m.Metadata.Get(millrace.MetadataReplayCount) != "2" {
					t.Errorf("replayed %s with replay_count %q, want p1 with 2", m.UUID, m.Metadata.Get(millrace.MetadataReplayCount))
				}
			}
		})
	}
}

func TestReplay_NoFilterNeedsAll(t *testing.T) {
	c, _ := seeded(t)
	env := []string{"MILLRACE_SERVICE_NAME=shop"}
	if r := c.exec(t, env, "replay"); r.code != exitUsage || !strings.Contains(r.stderr, "-all") {
		t.Errorf("replay without filter: exit %d, stderr %q; want %d naming -all", r.code, r.stderr, exitUsage)
	}
	if r := c.exec(t, env, "replay", "-all"); r.code != exitOK || !strings.Contains(r.stdout, "2 replayed, 1 skipped") {
		t.Errorf("replay -all: exit %d, stdout %q", r.code, r.stdout)
	}
}

func TestRun_UsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{name: "no command", args: nil, code: exitUsage, want: "usage: dlq"},
		{name: "unknown command", args: []string{"purge"}, code: exitUsage, want: `unknown command "purge"`},
		{name: "unknown flag", args: []string{"list", "-verbose"}, code: exitUsage, want: "-verbose"},
		{name: "bad time", args: []string{"list", "-since", "yesterday"}, code: exitUsage, want: "RFC 3339"},
		{name: "stray argument", args: []string{"list", "p1"}, code: exitUsage, want: `unexpected argument "p1"`},
		{name: "help", args: []string{"-h"}, code: exitOK, want: "usage: dlq"},
		{name: "command help", args: []string{"replay", "-h"}, code: exitOK, want: "-exclude-id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := seeded(t)
			r := c.exec(t, nil, tt.args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit %d and %q", r.code, r.stderr, tt.code, tt.want)
			}
		})
	}
}

func TestRun_ConfigErrors(t *testing.T) {
	bad := writeConfig(t, "transport:\n  kind: carrier-pigeon\n")
	tests := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{name: "missing file", args: []string{"-config", "/nonexistent/service.yaml", "list"}, want: "does not exist"},
		{name: "bad value", args: []string{"-config", bad, "list"}, want: `"transport.kind"`},
		{name: "file from MILLRACE_CONFIG", env: []string{"MILLRACE_CONFIG=" + bad}, args: []string{"list"}, want: `"transport.kind"`},
		{name: "bad override", env: []string{"MILLRACE_HANDLERS_CONCURRENCY=0"}, args: []string{"list"}, want: `"handlers.concurrency"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := seeded(t)
			r := c.exec(t, tt.env, tt.args...)
			if r.code != exitFail || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit %d and %q", r.code, r.stderr, exitFail, tt.want)
			}
		})
	}
}

func TestRun_OpensConfiguredTransport(t *testing.T) {
	cfg := writeConfig(t, "service:\n  name: shop\n")
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"-config", cfg, "list"}, nil, &out, &errOut); code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut.String())
	}
	if got := out.String(); got != "no matching entries in poison topic shop.poison\n" {
		t.Errorf("stdout = %q; want the default poison topic, empty", got)
	}
	if !strings.Contains(errOut.String(), "empty broker") {
		t.Errorf("stderr = %q; want the note that a memory broker opened here is empty", errOut.String())
	}
}

func TestRun_PoisonTopicFromConfig(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		args []string
		want string
	}{
		{name: "service name", yaml: "service:\n  name: shop\n", want: "shop.poison"},
		{name: "middleware.poison.topic", yaml: "middleware:\n  poison:\n    topic: dead.letters\n", want: "dead.letters"},
		{name: "flag wins", yaml: "middleware:\n  poison:\n    topic: dead.letters\n", args: []string{"-poison-topic", "other"}, want: "other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := seeded(t)
			r := c.exec(t, nil, append([]string{"-config", writeConfig(t, tt.yaml), "list"}, tt.args...)...)
			if want := "no matching entries in poison topic " + tt.want + "\n"; r.code != exitOK || (tt.want != "shop.poison" && r.stdout != want) {
				t.Errorf("exit %d, stdout %q; want %q", r.code, r.stdout, want)
			}
			if tt.want == "shop.poison" && !strings.HasSuffix(r.stdout, "3 entries in poison topic shop.poison\n") {
				t.Errorf("stdout %q; want the 3 entries of shop.poison", r.stdout)
			}
		})
	}
}

// plain is a transport kind that cannot browse.
type plain struct{ transports.Transport }

type plainConfig struct{}

func TestRun_TransportThatCannotBrowse(t *testing.T) {
	c := command{
		transports: func() (*transports.Registry, error) {
			return transports.NewRegistry(memory.Kind(), transports.Kind{
				Name:          "plain",
				DefaultConfig: func() any { return &plainConfig{} },
				Open: func(ctx context.Context, _ any, deps transports.Deps) (transports.Transport, error) {
					tr, err := memory.Kind().Open(ctx, memory.DefaultConfig(), deps)
					return plain{tr}, err
				},
			})
		},
		open: framework.OpenTransport,
	}
	r := c.exec(t, []string{"MILLRACE_TRANSPORT_KIND=plain"}, "list")
	if r.code != exitFail || !strings.Contains(r.stderr, `transport "plain"`) || !strings.Contains(r.stderr, "dlq.Browser") {
		t.Errorf("exit %d, stderr:\n%s\nwant exit %d naming transport \"plain\"", r.code, r.stderr, exitFail)
	}
}
