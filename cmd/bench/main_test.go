package main

import (
	"bytes"
	"context"
	"io"
	"os/exec"
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
		{[]string{"-transport", "carrier-pigeon"}, `-transport "carrier-pigeon": known transports are kafka, amqp, postgres, mysql, or all`},
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

// TestRun runs a small measurement end to end on the in-process Kafka
// broker and on RabbitMQ: both sides publish and consume every message,
// and the table shows both rates on every row.
func TestRun(t *testing.T) {
	for _, transport := range []string{"kafka", "amqp"} {
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
