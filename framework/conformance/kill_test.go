package conformance_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/framework"
	"github.com/millrace/millrace/transports/kafka/kafkatest"
)

// Environment of the consumer process that TestSIGKILL starts: the test
// binary itself, run as a service (see runKillChild).
const (
	envKillChild = "CONFORMANCE_KILL_CHILD" // "1": run as the consumer
	envKillTopic = "CONFORMANCE_KILL_TOPIC"
	envKillOut   = "CONFORMANCE_KILL_OUT" // file the handler appends ids to
)

// TestSIGKILL kills a consumer process with SIGKILL in the middle of a
// stream and starts it again: every message is handled (at least once).
// The consumer is a separate process, so the broker must be too; Kafka's
// in-process broker lives in this test process, which outlives the consumer.
func TestSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts consumer processes")
	}
	targets := []struct {
		kind string
		env  func(t *testing.T) []string
	}{
		{"amqp", func(*testing.T) []string {
			return []string{"MILLRACE_TRANSPORT_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/"}
		}},
		{"postgres", func(*testing.T) []string {
			return []string{"MILLRACE_TRANSPORT_POSTGRES_TABLE_PREFIX=" + tablePrefix()}
		}},
		{"mysql", func(*testing.T) []string { return []string{"MILLRACE_TRANSPORT_MYSQL_TABLE_PREFIX=" + tablePrefix()} }},
		{"kafka", func(t *testing.T) []string {
			return []string{"MILLRACE_TRANSPORT_KAFKA_BROKERS=" + strings.Join(kafkatest.NewCluster(t, 4), ",")}
		}},
	}
	for _, tc := range targets {
		t.Run(tc.kind, func(t *testing.T) {
			t.Parallel()
			const n = 2000
			topic := "kill-" + randomHex()
			out := filepath.Join(t.TempDir(), "handled")
			env := append(tc.env(t),
				"MILLRACE_TRANSPORT_KIND="+tc.kind,
				"MILLRACE_SERVICE_NAME=kill-"+randomHex(),
				envKillChild+"=1", envKillTopic+"="+topic, envKillOut+"="+out)

			first := startConsumer(t, env)
			publish(t, env, topic, n)
			waitFor(t, "the first consumer to handle a quarter of the stream", func() bool { return len(handledIDs(t, out)) >= n/4 })
			if err := first.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = first.Wait()
			killedAt := len(handledIDs(t, out))
			if killedAt >= n {
				t.Fatalf("the first consumer handled all %d messages before it was killed; the test proves nothing", n)
			}

			second := startConsumer(t, env)
			waitFor(t, fmt.Sprintf("the restarted consumer to handle the rest (%d of %d when killed)", killedAt, n), func() bool {
				return len(handledIDs(t, out)) == n
			})
			if err := second.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if err := second.Wait(); err != nil {
				t.Errorf("restarted consumer after SIGTERM: %v", err)
			}
		})
	}
}

// startConsumer runs this test binary as the consumer service and returns
// once it reported that it started.
func startConsumer(t *testing.T, env []string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	started := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		ok := false
		for sc.Scan() {
			if sc.Text() == "started" && !ok {
				ok = true
				started <- true
			}
		}
		if !ok {
			started <- false
		}
	}()
	select {
	case ok := <-started:
		if !ok {
			t.Fatalf("consumer exited before it started: %s", stderr.String())
		}
	case <-time.After(conformanceWait):
		t.Fatalf("consumer did not start within %v: %s", conformanceWait, stderr.String())
	}
	return cmd
}

const conformanceWait = 90 * time.Second

// publish publishes n messages with ids 0..n-1 to topic through the
// transport that env configures.
func publish(t *testing.T, env []string, topic string, n int) {
	t.Helper()
	reg, err := framework.Transports()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := framework.Parse(nil, env, reg)
	if err != nil {
		t.Fatal(err)
	}
	tr, closeTransport, err := framework.OpenTransport(context.Background(), cfg, reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer closeTransport()
	const batch = 100
	for i := 0; i < n; i += batch {
		msgs := make([]*message.Message, 0, batch)
		for j := i; j < min(i+batch, n); j++ {
			msgs = append(msgs, message.NewMessage(fmt.Sprintf("m-%05d", j), []byte(`{}`)))
		}
		if err := tr.Publisher().Publish(topic, msgs...); err != nil {
			t.Fatal(err)
		}
	}
}

// handledIDs returns the distinct ids in the consumer's output file.
func handledIDs(t *testing.T, path string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "m-") && len(line) == len("m-00000") { // a line cut by the kill is not counted
			ids[line] = true
		}
	}
	return ids
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(conformanceWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", conformanceWait, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runKillChild is the consumer service: it appends the id of every message
// it handles to the output file, one per line, then acks; it runs until
// SIGTERM (graceful) or SIGKILL.
func runKillChild() int {
	reg, err := framework.Transports()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cfg, err := framework.Load("", os.Environ(), reg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	tr, closeTransport, err := framework.OpenTransport(context.Background(), cfg, reg, logger)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer closeTransport()
	app, err := framework.New(cfg, logger, tr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	f, err := os.OpenFile(os.Getenv(envKillOut), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer f.Close()
	framework.HandleRaw(app, "record", os.Getenv(envKillTopic), func(msg *message.Message) ([]*message.Message, error) {
		// A stream the kill can interrupt, also on Kafka, where the 4
		// partitions are handled at once.
		time.Sleep(4 * time.Millisecond)
		_, err := f.WriteString(msg.UUID + "\n")
		return nil, err
	})
	go func() {
		<-app.Started()
		fmt.Println("started")
	}()
	if err := app.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func randomHex() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
