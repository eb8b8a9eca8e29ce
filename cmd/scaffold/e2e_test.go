package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// rabbitURL is the RabbitMQ of the machine the end-to-end test runs the
// generated service against.
const rabbitURL = "amqp://guest:guest@127.0.0.1:5672/"

// offlineEnv is the environment of every go command the end-to-end test
// runs in a generated service: the module cache only, no network.
func offlineEnv() []string {
	return append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
}

// goIn runs go with args in dir, offline, and fails the test with its
// output if it fails.
func goIn(t *testing.T, dir string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = offlineEnv()
	out, err := cmd.CombinedOutput()
	t.Logf("go %s: %.1fs", strings.Join(args, " "), time.Since(start).Seconds())
	if err != nil {
		t.Fatalf("go %s in %s: %v\n%s", strings.Join(args, " "), dir, err, out)
	}
	return string(out)
}

// mustScaffold runs scaffold with args and fails the test if it fails.
func mustScaffold(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := scaffold(t, args...)
	if code != 0 {
		t.Fatalf("scaffold %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// TestEndToEnd generates a service, builds, vets and tests it offline,
// adds every kind of piece and does it again, checks that running each
// command a second time changes nothing, and then runs the service on
// RabbitMQ and sees its handler handle a command sent with its own send
// subcommand.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a generated service: not in -short")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatal("the go command is needed: ", err)
	}
	suffix := randomHex(t)
	root := filepath.Join(t.TempDir(), "shop")
	newArgs := []string{"new", "shop", "--module", "example.com/shop", "--transport", "amqp", "--dir", root}
	out := mustScaffold(t, newArgs...)
	if !strings.Contains(out, "tidying") || !strings.Contains(out, "next:\n  cd ") {
		t.Errorf("scaffold new said:\n%s", out)
	}

	goIn(t, root, "build", "./...")
	goIn(t, root, "vet", "./...")
	goIn(t, root, "test", "-count=1", "./...")
	goIn(t, root, "mod", "tidy", "-diff")
	goIn(t, root, "tool", "wire", "diff", "./...") // wire_gen.go is what wire writes

	before := treeHash(t, root)
	mustScaffold(t, newArgs...)
	if after := treeHash(t, root); after != before {
		t.Fatal("the second scaffold new changed the tree")
	}

	// Every kind, and a command of a name no other run uses, for RabbitMQ.
	ping := "Ping" + strings.ToUpper(suffix)
	for _, add := range [][]string{{"command", "ReserveStock"}, {"event", "StockReserved"}, {"query", "GetStock"}, {"aggregate", "Account"}, {"saga", "Fulfilment"}, {"command", ping}} {
		args := append([]string{"add", "--dir", root}, add...)
		mustScaffold(t, args...)
		before := treeHash(t, root)
		mustScaffold(t, args...)
		if after := treeHash(t, root); after != before {
			t.Fatalf("the second scaffold add %s changed the tree", strings.Join(add, " "))
		}
	}
	bin := t.TempDir()
	goIn(t, root, "build", "-o", bin+string(filepath.Separator), "./...") // the binary too, for RabbitMQ
	goIn(t, root, "vet", "./...")
	goIn(t, root, "test", "-count=1", "./...")

	runOnRabbitMQ(t, root, filepath.Join(bin, "shop"), "shop-"+suffix, ping)
}

// runOnRabbitMQ runs the service in root (built as bin) with transport.kind amqp, sends
// it command ping with its send subcommand, and waits until the handler
// logged it and counted it in /metrics; then stops it with SIGTERM.
func runOnRabbitMQ(t *testing.T, root, bin, service, ping string) {
	conn, err := amqp091.Dial(rabbitURL)
	if err != nil {
		t.Fatalf("RabbitMQ at %s: %v", rabbitURL, err)
	}
	conn.Close()

	addr := freeAddr(t)
	env := append(os.Environ(),
		"MILLRACE_TRANSPORT_KIND=amqp", "MILLRACE_TRANSPORT_AMQP_URL="+rabbitURL,
		"MILLRACE_SERVICE_NAME="+service, "MILLRACE_OBSERVABILITY_ADDR="+addr)

	var logs syncBuffer
	svc := exec.Command(bin)
	svc.Dir, svc.Env, svc.Stdout, svc.Stderr = root, env, &logs, &logs
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- svc.Wait() }()
	t.Cleanup(func() {
		_ = svc.Process.Kill() // if the test failed before stopping it
		<-exited
		deleteRabbitMQNames(t, service, ping, logs.String())
	})
	waitFor(t, &logs, exited, 2*time.Minute, "the service started", func(l string) bool { return strings.Contains(l, `msg="service started"`) })

	id := "e2e-" + randomHex(t)
	send := exec.Command(bin, "send", ping, fmt.Sprintf(`{"id":%q}`, id))
	send.Dir, send.Env = root, env
	if out, err := send.CombinedOutput(); err != nil {
		t.Fatalf("%s send: %v\n%s", bin, err, out)
	}
	handled := regexp.MustCompile(`msg="` + ping + ` handled" .*handler=` + ping + ` .*id=` + id)
	waitFor(t, &logs, exited, time.Minute, "the handler handled the command", handled.MatchString)

	metric := fmt.Sprintf(`millrace_handler_messages_total{handler=%q,outcome="success"} 1`, ping)
	deadline := time.Now().Add(time.Minute)
	for {
		body := scrape(t, "http://"+addr+"/metrics")
		if strings.Contains(body, metric) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics never showed %s:\n%s", metric, grepLines(body, "millrace_handler_messages_total"))
		}
		time.Sleep(100 * time.Millisecond)
	}

	if err := svc.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		if err != nil {
			t.Fatalf("the service did not exit cleanly on SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("the service did not stop within a minute of SIGTERM:\n%s", logs.String())
	}
}

// waitFor polls the service's log until match matches a line, the
// service exits, or the timeout passes.
func waitFor(t *testing.T, logs *syncBuffer, exited chan error, timeout time.Duration, what string, match func(string) bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, l := range strings.Split(logs.String(), "\n") {
			if match(l) {
				return
			}
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("the service exited (%v) before %s:\n%s", err, what, logs.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %s until %s; its log:\n%s", timeout, what, logs.String())
		}
	}
}

// deleteRabbitMQNames deletes the queues and exchanges that only this run
// used. The command queues of the fixed names (PlaceOrder.PlaceOrder, ...)
// are shared by every run and stay.
func deleteRabbitMQNames(t *testing.T, service, ping, logs string) {
	queues := []string{ping + "." + ping, "OrderPlaced." + service + ".order-placed", "StockReserved." + service + ".stock-reserved", service + ".poison.retained"}
	if m := regexp.MustCompile(`handler=cqrs\.replies topic=(\S+) group=(\S+)`).FindStringSubmatch(logs); m != nil {
		queues = append(queues, m[1]+"."+m[2])
	}
	exchanges := []string{ping, service + ".poison", service + ".replies"}
	conn, err := amqp091.Dial(rabbitURL)
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	defer conn.Close()
	for _, q := range queues {
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(q, false, false, false)
			_ = ch.Close()
		}
	}
	for _, x := range exchanges {
		if ch, err := conn.Channel(); err == nil {
			_ = ch.ExchangeDelete(x, false, false)
			_ = ch.Close()
		}
	}
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// freeAddr returns a loopback address no one listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// syncBuffer is a bytes.Buffer safe for the writes of a process and the
// reads of the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
