package kafka_test

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

	"github.com/millrace/millrace/transports"
	"github.com/millrace/millrace/transports/kafka"
	"github.com/millrace/millrace/transports/transporttest"
)

// connectTimeout is the timeout of the tests with silent brokers, short to
// keep them fast.
const connectTimeout = 300 * time.Millisecond

// checkTimedOut fails the test unless err is a timeout that names the config
// key and each of addrs, reached after about connectTimeout per address.
func checkTimedOut(t *testing.T, err error, took time.Duration, addrs ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error, want a connect timeout")
	}
	for _, want := range append([]string{"transport.kafka.connect_timeout", connectTimeout.String()}, addrs...) {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("error %q is not a net.Error timeout", err)
	}
	// The bound, plus Sarama's bookkeeping and a loaded machine.
	bound := connectTimeout * time.Duration(len(addrs))
	if took < connectTimeout || took > bound+time.Second {
		t.Errorf("failed after %v, want after about %v", took, bound)
	}
}

// TestOpen_SilentBrokerFailsWithinConnectTimeout: Open against brokers that
// accept connections and never answer fails after connect_timeout for each,
// with an error naming the key, every broker and what timed out.
func TestOpen_SilentBrokerFailsWithinConnectTimeout(t *testing.T) {
	for _, tt := range []struct {
		name    string
		brokers int
		tls     bool
		what    string
	}{
		{"plaintext", 1, false, "no answer from"},
		{"tls", 1, true, "no TLS handshake with"},
		{"two brokers", 2, false, "no answer from"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var addrs []string
			for range tt.brokers {
				addrs = append(addrs, transporttest.SilentServer(t))
			}
			cfg := testConfig(addrs)
			cfg.ConnectTimeout = connectTimeout
			cfg.TLS.Enabled = tt.tls
			start := time.Now()
			tr, err := kafka.Open(context.Background(), *cfg, transports.Deps{Logger: testLogger()})
			took := time.Since(start)
			if err == nil {
				_ = tr.Close()
			}
			checkTimedOut(t, err, took, addrs...)
			if err != nil && strings.Count(err.Error(), tt.what) != tt.brokers {
				t.Errorf("error %q does not say %q for each broker", err, tt.what)
			}
		})
	}
}

// TestOpen_SilentBootstrapBrokerThenLiveOne: with a silent bootstrap broker
// and a live one, Open gets through, whichever it asks first.
func TestOpen_SilentBootstrapBrokerThenLiveOne(t *testing.T) {
	brokers := newCluster(t, 1)
	cfg := testConfig([]string{transporttest.SilentServer(t), brokers[0]})
	cfg.ConnectTimeout = connectTimeout
	roundTrip(t, openTransport(t, cfg))
}

// proxy forwards connections to a broker until it goes silent: from then
// on it accepts connections and never answers, as a broker whose host hangs.
type proxy struct {
	addr   string
	silent atomic.Bool
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{addr: l.Addr().String()}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	keep := func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			keep(c)
			if p.silent.Load() {
				continue
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			keep(up)
			wg.Go(func() { _, _ = io.Copy(up, c); _ = up.Close() })
			wg.Go(func() { _, _ = io.Copy(c, up); _ = c.Close() })
		}
	})
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return p
}

// TestTransport_SilentBrokerBoundsEveryNewClient: once the bootstrap broker
// of an open transport goes silent, subscribing (in a group, and for this
// process alone), Lag and Browse each open a new client and fail after
// connect_timeout, naming the key and the broker, instead of waiting.
func TestTransport_SilentBrokerBoundsEveryNewClient(t *testing.T) {
	brokers := newCluster(t, 1)
	p := newProxy(t, brokers[0])
	cfg := testConfig([]string{p.addr})
	cfg.ConnectTimeout = connectTimeout
	tr := openTransport(t, cfg)
	p.silent.Store(true)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub, err := tr.Subscriber("g")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		call func() error
	}{
		{"Subscribe", func() error { _, err := sub.Subscribe(ctx, "orders"); return err }},
		{"SubscribeEphemeral", func() error { _, err := tr.SubscribeEphemeral(ctx, "orders"); return err }},
		{"Lag", func() error { _, err := tr.Lag(ctx, "g", "orders"); return err }},
		{"Browse", func() error { _, err := tr.Browse(ctx, "orders"); return err }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			err := tt.call()
			checkTimedOut(t, err, time.Since(start), p.addr)
		})
	}
}
