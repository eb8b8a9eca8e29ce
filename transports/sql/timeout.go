package sql

import (
	"context"
	"database/sql/driver"
	"errors"
	"time"

	"github.com/millrace/millrace/transports"
)

// A server that accepts connections and never answers (a half-dead host, a
// wrong port behind a proxy) must not make a service hang. Every
// connection the transport opens is bounded by connect_timeout
// (boundedConnector); at Open, so are the ping and the creation of the
// delayed messages table. Every later statement is bounded by
// query_timeout: the caller's context bounds it too, but Publish is usually
// called with a message's background context, and the subscriptions and
// the delayed messages poller have none. The errors name the config key,
// the server's address and what did not answer.

// bound is one of the transport's time limits: its config key and
// duration.
type bound struct {
	key  string // "transport.postgres.query_timeout"
	d    time.Duration
	addr string // the DSN, redacted

	// cause ends the contexts bound makes (context.WithTimeoutCause), so
	// that an error can be told apart from the end of a caller's context.
	cause error
}

func newBound(d dialect, key string, timeout time.Duration, dsn string) *bound {
	return &bound{
		key:   "transport." + d.String() + "." + key,
		d:     timeout,
		addr:  transports.RedactDSN(dsn),
		cause: errors.New(key + " passed"),
	}
}

// start returns ctx bounded by b.
func (b *bound) start(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, b.d, b.cause)
}

// check returns err as it is, or, if ctx (made by start) ended because b's
// time was up, a *timeoutError saying that what did not answer.
func (b *bound) check(ctx context.Context, what string, err error) error {
	if err == nil || context.Cause(ctx) != b.cause {
		return err
	}
	return b.timedOut(what, err)
}

func (b *bound) timedOut(what string, err error) error {
	return &timeoutError{what: what, b: b, err: err}
}

// timeoutError is the error of a call that the server did not answer in
// time. It unwraps to the driver's error.
type timeoutError struct {
	what string
	b    *bound
	err  error
}

func (e *timeoutError) Error() string {
	return e.what + ": no answer from " + e.b.addr + " within " + e.b.d.String() + " (" + e.b.key + "): " + e.err.Error()
}

func (e *timeoutError) Unwrap() error { return e.err }

// boundedConnector opens the pool's connections, each within
// connect_timeout, whatever the context of the call that needs it.
type boundedConnector struct {
	driver.Connector
	connect *bound
}

func (c boundedConnector) Connect(ctx context.Context) (driver.Conn, error) {
	ctx, cancel := c.connect.start(ctx)
	defer cancel()
	conn, err := c.Connector.Connect(ctx)
	return conn, c.connect.check(ctx, "connect", err)
}
