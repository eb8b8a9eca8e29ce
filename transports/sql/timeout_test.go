package sql_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/transports"
	"github.com/millrace/millrace/transports/transporttest"
)

// A server that accepts the connection and never answers makes Open fail
// within connect_timeout, with an error that names the key, the address
// without its password, and what did not answer.
func TestOpen_SilentServerFailsWithinConnectTimeout(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			addr := transporttest.SilentServer(t)
			cfg := b.config()
			cfg.DSN = withAddr(b, cfg.DSN, addr)
			if b.name == "mysql" {
				cfg.DSN = strings.Replace(cfg.DSN, "root@", "root:hunter2@", 1)
			} else {
				cfg.DSN = strings.Replace(cfg.DSN, "postgres@", "postgres:hunter2@", 1)
			}
			cfg.ConnectTimeout = 300 * time.Millisecond
			start := time.Now()
			tr, err := b.open(context.Background(), *cfg, transports.Deps{})
			elapsed := time.Since(start)
			if err == nil {
				_ = tr.Close()
				t.Fatal("Open succeeded on a server that never answers")
			}
			if elapsed > 3*time.Second {
				t.Errorf("Open took %s with connect_timeout 300ms", elapsed)
			}
			msg := err.Error()
			t.Log(msg)
			for _, want := range []string{"transport." + b.name + ".connect_timeout", addr, "connect", "300ms"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not name %q", msg, want)
				}
			}
			if strings.Contains(msg, "hunter2") {
				t.Errorf("error %q contains the password", msg)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("error %q does not wrap context.DeadlineExceeded", msg)
			}
		})
	}
}

// A server that stops answering once the transport runs: Publish fails
// within query_timeout, with an error naming it; the subscriptions say so
// in the log instead of waiting for ever; Close returns.
func TestQueryTimeout_ServerStopsAnswering(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cfg := testConfig(t, b)
			target := "127.0.0.1:5432"
			if b.name == "mysql" {
				target = "127.0.0.1:3306"
			}
			addr, silence := silentProxy(t, target)
			cfg.DSN = withAddr(b, cfg.DSN, addr)
			// Long enough for the statements before the silence on a
			// server that other test packages load.
			cfg.QueryTimeout = time.Second
			logs := newLogRecorder(slog.LevelDebug)
			tr, err := b.open(context.Background(), cfg, transports.Deps{Logger: slog.New(logs)})
			if err != nil {
				t.Fatal(err)
			}
			closed := false
			defer func() {
				if !closed {
					_ = tr.Close()
				}
			}()
			topic := "silent_" + watermill.NewShortUUID()
			ch := transporttest.SubscribeGroup(t, tr, "g", topic)
			if err := tr.Publisher().Publish(topic, message.NewMessage(watermill.NewUUID(), []byte("before"))); err != nil {
				t.Fatal(err)
			}
			transporttest.Receive(t, ch, 10*time.Second)

			silence()
			start := time.Now()
			err = tr.Publisher().Publish(topic, message.NewMessage(watermill.NewUUID(), []byte("after")))
			if err == nil {
				t.Fatal("Publish succeeded on a server that no longer answers")
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Publish took %s with query_timeout 1s", d)
			}
			t.Logf("Publish after %s: %v", time.Since(start), err)
			key := "transport." + b.name + ".query_timeout"
			if msg := err.Error(); !strings.Contains(msg, key) || !strings.Contains(msg, addr) || !strings.Contains(msg, "publish to "+topic) {
				t.Errorf("Publish: %q, want an error naming %s, the address and the topic", msg, key)
				for _, l := range logs.Lines() {
					if strings.Contains(l, "go-sql-driver") {
						t.Log(l)
					}
				}
			}

			deadline := time.Now().Add(10 * time.Second)
			for !hasLine(logs.Lines(), "ERROR", key) {
				if time.Now().After(deadline) {
					t.Fatalf("no subscription logged an error naming %s:\n%s", key, strings.Join(logs.Lines(), "\n"))
				}
				time.Sleep(20 * time.Millisecond)
			}

			t.Logf("first error logged: %s", firstLine(logs.Lines(), "ERROR", key))
			start = time.Now()
			closed = true
			_ = tr.Close()
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Close took %s on a server that does not answer", d)
			}
		})
	}
}

// A subscription waiting for its turn, while another subscription of its
// group holds a batch longer than query_timeout, is not a timeout: it
// skips the group's locked offsets row and logs nothing.
func TestQueryTimeout_WaitingForTheGroupIsNotATimeout(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cfg := testConfig(t, b)
			cfg.QueryTimeout = time.Second
			holder := openTransport(t, b, cfg)
			logs := newLogRecorder(slog.LevelWarn)
			waiter := openLogging(t, b, cfg, slog.New(logs))
			topic := "turn_" + watermill.NewShortUUID()
			held := transporttest.SubscribeGroup(t, holder, "g", topic)
			msgs := []*message.Message{
				message.NewMessage(watermill.NewUUID(), []byte("1")),
				message.NewMessage(watermill.NewUUID(), []byte("2")),
			}
			if err := holder.Publisher().Publish(topic, msgs...); err != nil {
				t.Fatal(err)
			}
			first := transporttest.Next(t, held, 10*time.Second)
			waiting := transporttest.SubscribeGroup(t, waiter, "g", topic)
			transporttest.ExpectNone(t, waiting, 3*time.Second) // 3 query timeouts
			first.Ack()
			// The rest goes to either of them, once.
			select {
			case m := <-held:
				m.Ack()
			case m := <-waiting:
				m.Ack()
			case <-time.After(10 * time.Second):
				t.Fatal("second message not delivered")
			}
			if lines := logs.Lines(); len(lines) > 0 {
				t.Errorf("the waiting subscription logged:\n%s", strings.Join(lines, "\n"))
			}
		})
	}
}

func hasLine(lines []string, words ...string) bool {
	for _, l := range lines {
		ok := true
		for _, w := range words {
			ok = ok && strings.Contains(l, w)
		}
		if ok {
			return true
		}
	}
	return false
}

func firstLine(lines []string, words ...string) string {
	for _, l := range lines {
		if hasLine([]string{l}, words...) {
			return l
		}
	}
	return ""
}
