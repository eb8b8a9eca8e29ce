package outbox_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/millrace/millrace/cqrs"
	"github.com/millrace/millrace/cqrs/outbox"
	"github.com/millrace/millrace/framework"
	"github.com/millrace/millrace/transports"
	"github.com/millrace/millrace/transports/memory"
)

// backend is a database the tests run on.
type backend struct {
	name    string
	dialect outbox.Dialect
	driver  string
	dsn     string
}

var backends = []backend{
	{"postgres", outbox.Postgres, "pgx", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"},
	{"mysql", outbox.MySQL, "mysql", "root@tcp(127.0.0.1:3306)/test?parseTime=true&interpolateParams=true"},
}

func forEachBackend(t *testing.T, f func(t *testing.T, b backend)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { f(t, b) })
	}
}

func randomHex() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// openDB opens b's database, closed when the test ends.
func openDB(t testing.TB, b backend) *sql.DB {
	t.Helper()
	db, err := sql.Open(b.driver, b.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// dropLater drops the outbox tables of prefix when the test ends.
func dropLater(t testing.TB, b backend, db *sql.DB, prefix string) {
	t.Cleanup(func() {
		ctx := context.Background()
		switch b.dialect {
		case outbox.Postgres:
			_, _ = db.ExecContext(ctx, `DROP TABLE IF EXISTS "`+prefix+`outbox" CASCADE`)
			_, _ = db.ExecContext(ctx, `DROP FUNCTION IF EXISTS "`+prefix+`outbox_notify"()`)
		default:
			_, _ = db.ExecContext(ctx, "DROP TABLE IF EXISTS `"+prefix+"outbox`, `"+prefix+"outbox_relay`")
		}
	})
}

// flaky is a transport whose publisher fails while down is set, as a broker
// that went away does.
type flaky struct {
	transports.Transport
	down atomic.Bool
	// slowAbove, when > 0, makes a publish of more messages than it take
	// slowFor and then fail, as a broker that cannot confirm a large batch
	// in time.
	slowAbove atomic.Int64
	slowFor   time.Duration
}

func (f *flaky) Publisher() message.Publisher { return flakyPublisher{f} }

type flakyPublisher struct{ f *flaky }

var errBrokerDown = errors.New("broker down")

func (p flakyPublisher) Publish(topic string, msgs ...*message.Message) error {
	if p.f.down.Load() {
		return errBrokerDown
	}
	if n := p.f.slowAbove.Load(); n > 0 && int64(len(msgs)) > n {
		time.Sleep(p.f.slowFor)
		return errors.New("broker: no confirm in time")
	}
	return p.f.Transport.Publisher().Publish(topic, msgs...)
}

func (flakyPublisher) Close() error { return nil }

// svc is one service instance with an outbox, on broker bk.
type svc struct {
	app *framework.App
	bus *cqrs.Bus
	ob  *outbox.Outbox
	tr  *flaky
	db  *sql.DB
}

func newSvc(t *testing.T, bk *memory.Broker, b backend, prefix, yaml string, edit func(*outbox.Config)) *svc {
	t.Helper()
	reg, err := transports.NewRegistry(memory.KindOn(bk))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := framework.Parse([]byte(yaml), []string{"MILLRACE_SERVICE_NAME=shop-" + prefix}, reg)
	if err != nil {
		t.Fatal(err)
	}
	logger := framework.NewLogger(cfg, io.Discard)
	tr, cleanup, err := framework.OpenTransport(context.Background(), cfg, reg, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	f := &flaky{Transport: tr}
	app, err := framework.New(cfg, logger, f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = app.Stop(context.Background()) })
	bus := cqrs.New(app)
	db := openDB(t, b)
	oc := outbox.DefaultConfig(b.dialect)
	oc.TablePrefix = prefix
	if edit != nil {
		edit(&oc)
	}
	ob, err := outbox.New(context.Background(), bus, db, oc)
	if err != nil {
		t.Fatal(err)
	}
	dropLater(t, b, db, prefix)
	return &svc{app: app, bus: bus, ob: ob, tr: f, db: db}
}

func (s *svc) start(t *testing.T) {
	t.Helper()
	if err := s.app.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// collector records the messages of a topic a group receives, by id.
type collector struct {
	mu  sync.Mutex
	ids map[string]int
	all []string
}

func collect(t *testing.T, bk *memory.Broker, topic string) *collector {
	t.Helper()
	c := &collector{ids: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	s := bk.Subscriber("collector-" + randomHex())
	ch, err := s.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m := range ch {
			c.mu.Lock()
			c.ids[m.UUID]++
			c.all = append(c.all, m.UUID)
			c.mu.Unlock()
			m.Ack()
		}
	}()
	t.Cleanup(func() { cancel(); _ = s.Close(); <-done })
	return c
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ids)
}

func (c *collector) order() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.all...)
}

func (c *collector) doubled() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for id, n := range c.ids {
		if n > 1 {
			out = append(out, id)
		}
	}
	return out
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newBroker(t *testing.T) *memory.Broker {
	t.Helper()
	bk, err := memory.New(*memory.DefaultConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bk.Close() })
	return bk
}

func prefix() string { return "ob_" + randomHex() + "_" }

func msgs(ids ...string) []*message.Message {
	out := make([]*message.Message, len(ids))
	for i, id := range ids {
		out[i] = message.NewMessage(id, []byte(`{"id":"`+id+`"}`))
	}
	return out
}

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strings.Repeat("0", 0) + itoa(i)
	}
	return out
}

func itoa(i int) string {
	const digits = "0123456789"
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{digits[i%10]}, b...)
	}
	return string(b)
}
