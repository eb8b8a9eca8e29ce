package kafka

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// connectTimeoutKey is the config key that bounds connecting to a broker.
const connectTimeoutKey = "transport.kafka.connect_timeout"

// dialer opens every connection of the transport's Sarama clients (the
// publisher's, each subscription's, Lag's and Browse's, to bootstrap brokers
// and to the brokers they learn of), so that a broker that accepts a
// connection and never answers, a half-dead host or a wrong port behind a
// proxy, costs at most connect_timeout and not Sarama's 30s per attempt: it
// bounds the TCP connect and the TLS handshake together, and then the
// answer to the connection's first request (see boundedConn). It is
// Sarama's Net.Proxy.Dialer; with TLS on, it makes the TLS connection
// itself, as Sarama would (the server name defaults to the broker's host).
type dialer struct {
	timeout   time.Duration
	keepAlive time.Duration
	tls       *tls.Config // nil: plaintext
	hold      holds
}

// holds are how long a broker may rightly hold requests before it answers,
// which a first request of those kinds is given on top of the timeout: a
// produce waits for the replicas up to the producer's timeout (and has no
// answer at all with acks "none"), a fetch for data up to its max wait, a
// consumer group join for the group's rebalance.
type holds struct {
	produce, fetch, join time.Duration
	produceUnanswered    bool // acks "none"
}

// Kafka API keys of the requests that a broker may hold.
const (
	apiProduce   = 0
	apiFetch     = 1
	apiJoinGroup = 11
)

// Dial connects to the broker at addr.
func (d *dialer) Dial(network, addr string) (net.Conn, error) {
	deadline := time.Now().Add(d.timeout)
	nd := net.Dialer{Deadline: deadline, KeepAlive: d.keepAlive}
	conn, err := nd.Dial(network, addr)
	if err != nil {
		if isTimeout(err) {
			return nil, &connectError{addr: addr, phase: phaseConnect, timeout: d.timeout, err: err}
		}
		return nil, err
	}
	if d.tls != nil {
		cfg := d.tls
		if cfg.ServerName == "" {
			cfg = cfg.Clone()
			cfg.ServerName, _, _ = net.SplitHostPort(addr)
		}
		tc := tls.Client(conn, cfg)
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			_ = conn.Close()
			if isTimeout(err) || errors.Is(err, context.DeadlineExceeded) {
				return nil, &connectError{addr: addr, phase: phaseTLS, timeout: d.timeout, err: err}
			}
			return nil, err
		}
		conn = tc
	}
	return &boundedConn{Conn: conn, addr: addr, timeout: d.timeout, hold: d.hold}, nil
}

// phase is the part of connecting that a connectError names.
type phase int

const (
	phaseConnect phase = iota // TCP connect
	phaseTLS                  // TLS handshake
	phaseAnswer               // the answer to the first request
)

// connectError is a connection to a broker that timed out before the broker
// first answered. It is a net.Error whose Timeout is true, so Sarama treats
// it as it treats its own timeouts (it tries the next broker).
type connectError struct {
	addr    string
	phase   phase
	timeout time.Duration
	err     error
}

func (e *connectError) Error() string {
	within := " within " + connectTimeoutKey + " (" + e.timeout.String() + ")"
	switch e.phase {
	case phaseConnect:
		return "could not connect to " + e.addr + within
	case phaseTLS:
		return "no TLS handshake with " + e.addr + within
	default:
		return "no answer from " + e.addr + " to the first request" + within
	}
}

func (e *connectError) Unwrap() error   { return e.err }
func (e *connectError) Timeout() bool   { return true }
func (e *connectError) Temporary() bool { return true }

// isTimeout reports whether err is a timeout of the network.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// explain returns err shown as the connect timeouts it holds, if it holds
// any (one per broker that timed out), so that the error says what an
// operator can act on (which broker, which config key) instead of Sarama's
// "client has run out of available brokers"; err is still in its chain.
func explain(err error) error {
	var found []string
	var walk func(error)
	walk = func(err error) {
		if ce, ok := err.(*connectError); ok {
			found = append(found, ce.Error())
			return
		}
		// Sarama joins the errors of its brokers with hashicorp's
		// multierror, whose chain shows its head only to As.
		if a, ok := err.(interface{ As(any) bool }); ok {
			var ce *connectError
			if a.As(&ce) {
				found = append(found, ce.Error())
			}
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			if next := u.Unwrap(); next != nil {
				walk(next)
			}
		case interface{ Unwrap() []error }:
			for _, next := range u.Unwrap() {
				walk(next)
			}
		}
	}
	if err != nil {
		walk(err)
	}
	if len(found) == 0 {
		return err
	}
	slices.Sort(found)
	return &explained{text: strings.Join(slices.Compact(found), "; "), err: err}
}

// explained is err shown as text.
type explained struct {
	text string
	err  error
}

func (e *explained) Error() string { return e.text }
func (e *explained) Unwrap() error { return e.err }

// boundedConn is a broker connection whose first exchange is bounded: from
// the first request written, the broker has timeout to start answering (and
// for a request it may hold, that hold on top, see holds); until it has,
// every read and write deadline Sarama sets is cut to that limit, and a read
// that passes it fails with a *connectError. From the first byte of the
// answer on, Sarama's own deadlines (Net.ReadTimeout and Net.WriteTimeout)
// apply unchanged. A connection whose first request has no answer (a
// produce with acks "none") is left to Sarama's deadlines from the start.
//
// Sarama writes each request with one Write, from one goroutine, and reads
// answers from another.
type boundedConn struct {
	net.Conn
	addr    string
	timeout time.Duration
	hold    holds

	settled atomic.Bool // the broker answered, or the first request may be held

	mu          sync.Mutex // guards the fields below while not settled
	limit       time.Time  // when the first answer is due; zero before the first write
	read, write time.Time  // the deadlines Sarama asked for
}

func (c *boundedConn) Write(b []byte) (int, error) {
	if !c.settled.Load() {
		c.first(b)
	}
	return c.Conn.Write(b)
}

// first starts the bound at the first request b, or settles the connection
// if b has no answer.
func (c *boundedConn) first(b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.settled.Load() || !c.limit.IsZero() {
		return
	}
	due := c.timeout
	// A request is its size (int32), API key (int16), version, ...
	if len(b) >= 6 {
		switch binary.BigEndian.Uint16(b[4:6]) {
		case apiProduce:
			if c.hold.produceUnanswered {
				c.settle()
				return
			}
			due += c.hold.produce
		case apiFetch:
			due += c.hold.fetch
		case apiJoinGroup:
			due += c.hold.join
		}
	}
	c.limit = time.Now().Add(due)
	_ = c.Conn.SetReadDeadline(c.cut(c.read))
	_ = c.Conn.SetWriteDeadline(c.cut(c.write))
}

func (c *boundedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if c.settled.Load() {
		return n, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if n > 0 {
		c.settle()
		return n, err
	}
	if err != nil && !c.limit.IsZero() && isTimeout(err) && !time.Now().Before(c.limit) {
		return n, &connectError{addr: c.addr, phase: phaseAnswer, timeout: c.timeout, err: err}
	}
	return n, err
}

// settle ends the bound: Sarama's deadlines apply from now on. c.mu is held.
// The deadlines are put back before settled is set: from then on the
// setters no longer take c.mu, and one of theirs must not be overwritten.
func (c *boundedConn) settle() {
	if c.settled.Load() {
		return
	}
	if !c.limit.IsZero() {
		_ = c.Conn.SetReadDeadline(c.read)
		_ = c.Conn.SetWriteDeadline(c.write)
	}
	c.settled.Store(true)
}

// cut returns deadline t, or the limit of the first answer if that is
// earlier (a zero t is no deadline, later than any). c.mu is held.
func (c *boundedConn) cut(t time.Time) time.Time {
	if c.limit.IsZero() || (!t.IsZero() && t.Before(c.limit)) {
		return t
	}
	return c.limit
}

func (c *boundedConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

func (c *boundedConn) SetReadDeadline(t time.Time) error {
	if c.settled.Load() {
		return c.Conn.SetReadDeadline(t)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.read = t
	if c.settled.Load() {
		return c.Conn.SetReadDeadline(t)
	}
	return c.Conn.SetReadDeadline(c.cut(t))
}

func (c *boundedConn) SetWriteDeadline(t time.Time) error {
	if c.settled.Load() {
		return c.Conn.SetWriteDeadline(t)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.write = t
	if c.settled.Load() {
		return c.Conn.SetWriteDeadline(t)
	}
	return c.Conn.SetWriteDeadline(c.cut(t))
}
