package amqp_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/transports"
	"github.com/millrace/millrace/transports/amqp"
)

// outageProxy forwards TCP connections to the broker and can play a broker
// outage for its own clients only: down cuts every connection and refuses
// new ones until up.
type outageProxy struct {
	addr, target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startOutageProxy(t *testing.T, target string) *outageProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &outageProxy{addr: ln.Addr().String(), target: target, conns: map[net.Conn]struct{}{}}
	p.serve(ln)
	t.Cleanup(func() {
		p.down()
		p.wg.Wait()
	})
	return p
}

func (p *outageProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", p.target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[b] = struct{}{}, struct{}{}
			p.mu.Unlock()
			pipe := func(dst, src net.Conn) {
				_, _ = io.Copy(dst, src)
				_ = dst.Close()
				_ = src.Close()
			}
			p.wg.Go(func() { pipe(b, c) })
			p.wg.Go(func() { pipe(c, b) })
		}
	})
}

// down closes the listener and every connection.
func (p *outageProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
}

// up listens again on the same address.
func (p *outageProxy) up() error {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return err
	}
	p.serve(ln)
	return nil
}

// While messages flow, the broker becomes unreachable for a while (for this
// transport only: its connections go through a proxy that cuts them and
// refuses new ones). Publishes during the outage fail, a caller that
// retries gets through once the broker is back, the subscription resumes
// by itself, and every message arrives at least once. The gated
// TestFault_BrokerRestartDuringFlow does the same with a real broker stop.
func TestReconnect_BrokerOutageDuringFlow(t *testing.T) {
	const total = 3000
	proxy := startOutageProxy(t, strings.TrimSuffix(strings.TrimPrefix(brokerURL, "amqp://guest:guest@"), "/"))
	tr := openTransport(t, func(c *amqp.Config) {
		c.URL = "amqp://guest:guest@" + proxy.addr + "/"
		c.ReconnectInitialInterval = 50 * time.Millisecond
		c.ReconnectMaxInterval = 200 * time.Millisecond
	})
	topic := uniqueTopic("outage")
	subs := subscribeGroups(t, tr, topic, nil, "g")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var published, failures atomic.Int64
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		for i := 0; i < total; {
			err := tr.Publisher().Publish(topic, message.NewMessage(watermill.NewUUID(), []byte("m")))
			if err == nil {
				i++
				published.Add(1)
				continue
			}
			if errors.Is(err, transports.ErrClosed) || ctx.Err() != nil {
				return
			}
			failures.Add(1)
			time.Sleep(20 * time.Millisecond)
		}
	})

	// The outage, a fifth of the way in.
	wg.Go(func() {
		for published.Load() < total/5 {
			if ctx.Err() != nil {
				return
			}
			time.Sleep(time.Millisecond)
		}
		proxy.down()
		time.Sleep(time.Second)
		if err := proxy.up(); err != nil {
			t.Errorf("proxy up again: %v", err)
		}
	})

	seen := make(map[string]bool, total)
	for len(seen) < total {
		select {
		case m, ok := <-subs["g"]:
			if !ok {
				t.Fatal("subscription closed")
			}
			seen[m.UUID] = true
			m.Ack()
		case <-ctx.Done():
			t.Fatalf("received %d of %d within a minute; %d publishes failed", len(seen), total, failures.Load())
		}
	}
	if failures.Load() == 0 {
		t.Error("no publish failed during the outage: the outage did not happen")
	}
	t.Logf("%d received; %d publishes failed during the outage and were retried", total, failures.Load())
}
