package main

import (
	"bytes"
	"context"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func TestParseFlags_Errors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"-n", "0"}, "-n 0: must be at least 1"},
		{[]string{"-publishers", "0"}, "-publishers 0: must be at least 1"},
		{[]string{"-batch", "0"}, "-batch 0: must be at least 1"},
		{[]string{"-transport", "carrier-pigeon"}, `-transport "carrier-pigeon": known transports are memory, kafka, amqp, postgres, mysql, or all`},
		{[]string{"-transport", "memory,tcp"}, `-transport "tcp": known transports are memory, kafka, amqp, postgres, mysql, or all`},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			_, err := parseFlags(c.args, io.Discard)
			if err == nil || err.Error() != c.want {
				t.Fatalf("parseFlags(%q) = %v, want %q", c.args, err, c.want)
			}
		})
	}
}

func TestParseFlags_Transports(t *testing.T) {
	cases := []struct {
		arg  string
		want []string
	}{
		{"all", []string{"memory", "kafka", "amqp", "postgres", "mysql"}},
		{"memory", []string{"memory"}},
		{"memory,kafka", []string{"memory", "kafka"}},
	}
	for _, c := range cases {
		t.Run(c.arg, func(t *testing.T) {
			o, err := parseFlags([]string{"-transport", c.arg}, io.Discard)
			if err != nil || !slices.Equal(o.transports, c.want) {
				t.Errorf("parseFlags(-transport %s) = %q, %v; want %q", c.arg, o.transports, err, c.want)
			}
		})
	}
}

func TestCommand_ExitStatus(t *testing.T) {
	cases := []struct {
		args   []string
		code   int
		stdout string // in stdout
		stderr string // in stderr; "" wants it empty
	}{
		{args: []string{"-help"}, code: 0, stdout: "usage: go run ./cmd/bench"},
		{args: []string{"-h"}, code: 0, stdout: "-transport string"},
		{args: []string{"-transport", "carrier-pigeon"}, code: 1, stderr: `bench: -transport "carrier-pigeon"`},
		{args: []string{"-no-such-flag"}, code: 1, stdout: "usage: go run ./cmd/bench", stderr: "bench: flag provided but not defined: -no-such-flag"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := command(context.Background(), c.args, nil, &stdout, &stderr)
			if code != c.code || !strings.Contains(stdout.String(), c.stdout) ||
				(c.stderr == "" && stderr.Len() > 0) || !strings.Contains(stderr.String(), c.stderr) {
				t.Errorf("exit %d, stdout:\n%s\nstderr:\n%s\nwant exit %d, %q in stdout, %q in stderr", code, stdout.String(), stderr.String(), c.code, c.stdout, c.stderr)
			}
			if strings.Contains(stdout.String(), "millrace bench:") {
				t.Errorf("measured after %q:\n%s", c.args, stdout.String())
			}
		})
	}
}

// TestRun runs a small measurement end to end on the memory transport
// (against Watermill's GoChannel), the in-process Kafka broker and
// RabbitMQ: both sides publish and consume every message, and the table
// shows both rates on every row.
func TestRun(t *testing.T) {
	for _, transport := range []string{"memory", "kafka", "amqp"} {
		t.Run(transport, func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), []string{"-transport", transport, "-n", "300", "-publishers", "4", "-batch", "50"}, nil, &out)
			if err != nil {
				t.Fatalf("run: %v\n%s", err, out.String())
			}
			rows := 0
			for _, line := range strings.Split(out.String(), "\n") {
				f := strings.Fields(line)
				if len(f) == 0 || f[0] != transport {
					continue
				}
				rows++
				if f[len(f)-2] == "-" || f[len(f)-2] == "0" {
					t.Errorf("no publish rate in %q", line)
				}
				if f[len(f)-1] == "-" || f[len(f)-1] == "0" {
					t.Errorf("no consume rate in %q", line)
				}
			}
			want := 5
			if transport == "amqp" {
				want++ // the broker ceiling
			}
			if rows != want {
				t.Errorf("%d %s rows, want %d:\n%s", rows, transport, want, out.String())
			}
		})
	}
}

// TestRun_MemoryBacklogBeyondRetention checks that the millrace rows on
// memory drain a backlog larger than the memory broker's retention (what a
// consumer group that subscribes after publishing would start with): the
// group exists before the messages are published.
func TestRun_MemoryBacklogBeyondRetention(t *testing.T) {
	env := []string{"MILLRACE_TRANSPORT_MEMORY_RETENTION=10"}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-transport", "memory", "-n", "300", "-batch", "50", "-timeout", "10s"}, env, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
}

// TestRun_AMQPLeavesNoQueues checks that a run deletes the RabbitMQ queues
// it declared, so that runs do not pile up durable queues.
func TestRun_AMQPLeavesNoQueues(t *testing.T) {
	if err := run(context.Background(), []string{"-transport", "amqp", "-n", "50", "-batch", "10"}, nil, io.Discard); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("rabbitmqctl", "list_queues", "-q", "--no-table-headers", "name").Output()
	if err != nil {
		t.Fatalf("rabbitmqctl list_queues: %v", err)
	}
	for _, q := range strings.Fields(string(out)) {
		if strings.HasPrefix(q, "bench.") {
			t.Errorf("queue %s left behind", q)
		}
	}
}

// TestRun_Outbox runs the outbox measurements on a small scale: every row
// has its figures.
func TestRun_Outbox(t *testing.T) {
	for _, db := range []string{"postgres", "mysql"} {
		t.Run(db, func(t *testing.T) {
			var out bytes.Buffer
			if err := run(context.Background(), []string{"-outbox", db, "-n", "200", "-publishers", "4", "-batch", "20"}, nil, &out); err != nil {
				t.Fatalf("run: %v\n%s", err, out.String())
			}
			for _, want := range []string{db + " outbox to kafka", db + " outbox to amqp", "the broker's ceiling", db + " handler: inbox and outbox"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("no row %q:\n%s", want, out.String())
				}
			}
		})
	}
}
