package framework_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/millrace/millrace/framework"
)

// rabbitmqctl runs rabbitmqctl with args, reporting a failure.
func rabbitmqctl(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "rabbitmqctl", args...).CombinedOutput(); err != nil {
		t.Errorf("rabbitmqctl %v: %v: %s", args, err, out)
	}
}

// /readyz of a service on RabbitMQ answers 503, naming the transport, while
// the broker's application is stopped, and 200 again once it is back; the
// subscription resumes by itself, so a message published then is handled.
//
// It stops the shared RabbitMQ for a few seconds, so it runs only with
// MILLRACE_FAULTS=1 (CI runs it in a serial step of its own), and always
// starts RabbitMQ again when it ends.
func TestFault_ReadyzFollowsRabbitMQ(t *testing.T) {
	if os.Getenv("MILLRACE_FAULTS") != "1" {
		t.Skip("stops the shared RabbitMQ: set MILLRACE_FAULTS=1 to run")
	}
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		t.Fatal("rabbitmqctl not on PATH")
	}
	run := watermill.NewShortUUID()
	topic, service := "fault.jobs."+run, "fault-"+run
	t.Cleanup(func() { deleteAMQP(t, []string{topic}, []string{service}) })
	reg, err := framework.Transports()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := framework.Parse([]byte("observability:\n  addr: 127.0.0.1:0\n"), []string{
		"MILLRACE_TRANSPORT_KIND=amqp",
		"MILLRACE_TRANSPORT_AMQP_URL=" + rabbitURL,
		"MILLRACE_TRANSPORT_AMQP_RECONNECT_INITIAL_INTERVAL=100ms",
		"MILLRACE_TRANSPORT_AMQP_RECONNECT_MAX_INTERVAL=1s",
		"MILLRACE_SERVICE_NAME=" + service,
	}, reg)
	if err != nil {
		t.Fatal(err)
	}
	logger := framework.NewLogger(cfg, io.Discard)
	tr, cleanup, err := framework.OpenTransport(context.Background(), cfg, reg, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	app, err := framework.New(cfg, logger, tr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = app.Stop(context.Background()) })
	handled := make(chan string, 10)
	framework.Handle(app, "work", topic, func(_ context.Context, j Job) error {
		handled <- j.Key
		return nil
	})
	if err := app.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	readyz := func() (int, framework.Readiness) {
		t.Helper()
		resp, err := httpc.Get("http://" + app.ObservabilityAddr() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r framework.Readiness
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, r
	}
	waitFor := func(what string, code int, within time.Duration) framework.Readiness {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			got, r := readyz()
			if got == code {
				return r
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: /readyz still %d %+v after %s, want %d", what, got, r, within, code)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitFor("started", http.StatusOK, 30*time.Second)

	// Runs before the App stops and the test's queues are deleted
	// (cleanups run last first), whatever happens below.
	t.Cleanup(func() { rabbitmqctl(t, "start_app") })
	rabbitmqctl(t, "stop_app")
	r := waitFor("RabbitMQ stopped", http.StatusServiceUnavailable, time.Minute)
	if r.Status != "not_ready" || r.Transport == "ok" || !strings.Contains(strings.Join(r.NotReady, "; "), "transport") {
		t.Errorf("RabbitMQ stopped: %+v, want not_ready naming the transport", r)
	}

	rabbitmqctl(t, "start_app")
	r = waitFor("RabbitMQ back", http.StatusOK, 2*time.Minute)
	if r.Status != "ready" || r.Transport != "ok" || r.Handlers["work"] != "ok" {
		t.Errorf("RabbitMQ back: %+v, want ready", r)
	}
	// The subscription resumed: a message published now is handled. The
	// first publish may meet the publisher's connection being dialled
	// again; a caller retries.
	deadline := time.Now().Add(time.Minute)
	for {
		err := app.Publish(context.Background(), topic, Job{Key: "after"})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("publish after RabbitMQ came back: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	select {
	case got := <-handled:
		if got != "after" {
			t.Errorf("handled %q, want after", got)
		}
	case <-time.After(time.Minute):
		t.Fatal("a message published after RabbitMQ came back was not handled")
	}
}
