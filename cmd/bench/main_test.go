package main

import (
	"bytes"
	"context"
	"io"
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

// TestRun_Kafka runs a small measurement end to end on the in-process Kafka
// broker: both sides publish and consume every message, and the table
// shows a rate for each.
func TestRun_Kafka(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"-transport", "kafka", "-n", "300", "-publishers", "4", "-batch", "50"}, nil, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	rows := 0
	for _, line := range strings.Split(out.String(), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "kafka" {
			continue
		}
		rows++
		if f[len(f)-2] == "-" || f[len(f)-2] == "0" {
			t.Errorf("no publish rate in %q", line)
		}
		if strings.Contains(line, "1/publish") && f[len(f)-1] == "-" {
			t.Errorf("no consume rate in %q", line)
		}
	}
	if rows != 5 {
		t.Errorf("%d kafka rows, want 5:\n%s", rows, out.String())
	}
}
