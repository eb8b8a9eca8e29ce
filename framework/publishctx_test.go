package framework_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/millrace/millrace/framework"
)

// stallProxy forwards TCP connections to target until stall is called;
// from then on it holds what either side sends, as a broker under a memory
// alarm holds publishes: connections stay open and nothing answers.
type stallProxy struct {
	addr    string
	mu      sync.Mutex
	stalled chan struct{}
}

func startStallProxy(t *testing.T, target string) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{addr: ln.Addr().String(), stalled: make(chan struct{})}
	var wg sync.WaitGroup
	var conns []net.Conn
	var cmu sync.Mutex
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			cmu.Lock()
			conns = append(conns, c, b)
			cmu.Unlock()
			pipe := func(dst, src net.Conn) {
				buf := make([]byte, 32<<10)
				for {
					n, err := src.Read(buf)
					select {
					case <-p.stalled:
						_, _ = io.Copy(io.Discard, src) // held: never forwarded
						return
					default:
					}
					if n > 0 {
						if _, werr := dst.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						_ = dst.Close()
						return
					}
				}
			}
			wg.Go(func() { pipe(b, c) })
			wg.Go(func() { pipe(c, b) })
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		cmu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		cmu.Unlock()
		wg.Wait()
	})
	return p
}

func (p *stallProxy) stall() { close(p.stalled) }

// On a RabbitMQ that stops answering (its connection open, nothing
// confirmed), Prepare and Publish return when their context's deadline
// passes, with an error that says so, instead of waiting for ever.
func TestPublish_ContextBoundsTheWaitOnABrokerThatStopsAnswering(t *testing.T) {
	proxy := startStallProxy(t, "127.0.0.1:5672")
	run := watermill.NewShortUUID()
	topic, svc := "stalled."+run, "stall-"+run
	t.Cleanup(func() { deleteAMQP(t, []string{topic}, []string{svc}) })
	app := newAppEnv(t, []string{"MILLRACE_SERVICE_NAME=" + svc, "MILLRACE_TRANSPORT_KIND=amqp",
		"MILLRACE_TRANSPORT_AMQP_URL=amqp://guest:guest@" + proxy.addr + "/",
		// One publisher channel, opened before the stall: opening a channel
		// on a stalled connection is the transport's own wait, not this.
		"MILLRACE_TRANSPORT_AMQP_PUBLISHER_CHANNELS=1"})
	if err := app.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := app.Publish(context.Background(), topic, Job{Key: "before"}); err != nil {
		t.Fatalf("publish before the stall: %v", err)
	}
	proxy.stall()
	for name, call := range map[string]func(context.Context) error{
		"Publish": func(ctx context.Context) error { return app.Publish(ctx, topic, Job{Key: "stalled"}) },
		"Prepare": func(ctx context.Context) error { return app.Prepare(ctx, topic+".other", svc+".worker") },
	} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		begin := time.Now()
		err := call(ctx)
		took := time.Since(begin)
		cancel()
		if err == nil || !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "deadline") {
			t.Errorf("%s on a stalled broker = %v, want an error naming the deadline", name, err)
		}
		if took > 3*time.Second {
			t.Errorf("%s took %v with a 1s deadline", name, took)
		}
	}
}

// newAppEnv builds an App from environment entries env, without starting it.
func newAppEnv(t *testing.T, env []string) *framework.App {
	t.Helper()
	reg, err := framework.Transports()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := framework.Parse([]byte("shutdown: {timeout: 1s, cancel_grace: 1s}\n"), env, reg)
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
	return app
}
