package sql_test

import (
	"context"
	stdsql "database/sql"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/millrace/millrace/transports"
	sqltransport "github.com/millrace/millrace/transports/sql"
)

// backend is one database the tests run against.
type backend struct {
	name   string
	driver string
	config func() *sqltransport.Config
	open   func(context.Context, sqltransport.Config, transports.Deps) (*sqltransport.Transport, error)
	// tables lists the tables of the current database.
	tables string
	quote  func(string) string
}

var backends = []backend{
	{
		name:   "postgres",
		driver: "pgx",
		config: sqltransport.PostgresDefaultConfig,
		open:   sqltransport.OpenPostgres,
		tables: "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()",
		quote:  func(s string) string { return `"` + s + `"` },
	},
	{
		name:   "mysql",
		driver: "mysql",
		config: sqltransport.MySQLDefaultConfig,
		open:   sqltransport.OpenMySQL,
		tables: "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()",
		quote:  func(s string) string { return "`" + s + "`" },
	},
}

// testConfig returns a config for b with fast polling and a table prefix
// unique to the test; every table with that prefix is dropped when the test
// ends.
func testConfig(t testing.TB, b backend) sqltransport.Config {
	t.Helper()
	c := b.config()
	c.PollInterval = 10 * time.Millisecond
	c.ResendInterval = 10 * time.Millisecond
	c.TablePrefix = "t" + strings.ToLower(watermill.NewShortUUID()[:8]) + "_"
	t.Cleanup(func() { dropTables(t, b, c.DSN, c.TablePrefix) })
	return *c
}

func dropTables(t testing.TB, b backend, dsn, prefix string) {
	db, err := stdsql.Open(b.driver, dsn)
	if err != nil {
		t.Errorf("drop tables: %v", err)
		return
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, b.tables)
	if err != nil {
		t.Errorf("drop tables: %v", err)
		return
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Errorf("drop tables: %v", err)
		}
		if strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	_ = rows.Close()
	for _, n := range names {
		if _, err := db.ExecContext(ctx, "DROP TABLE IF EXISTS "+b.quote(n)); err != nil {
			t.Errorf("drop table %s: %v", n, err)
		}
	}
}

// openTransport opens a transport on b, closed when the test ends.
func openTransport(t testing.TB, b backend, c sqltransport.Config) *sqltransport.Transport {
	t.Helper()
	return openLogging(t, b, c, nil)
}

// openLogging opens a transport on b that logs to logger (nil:
// slog.Default()), closed when the test ends.
func openLogging(t testing.TB, b backend, c sqltransport.Config, logger *slog.Logger) *sqltransport.Transport {
	t.Helper()
	tr, err := b.open(context.Background(), c, transports.Deps{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tr.Close(); err != nil {
			t.Error(err)
		}
	})
	return tr
}

// rawDB opens a plain connection pool to b's database, closed when the test
// ends: what a client other than millrace would use.
func rawDB(t testing.TB, b backend, c sqltransport.Config) *stdsql.DB {
	t.Helper()
	db, err := stdsql.Open(b.driver, c.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// silentProxy forwards connections to the server at target until silence
// is called; from then on it holds every connection, old and new, open and
// answers nothing, as a server that hangs does. It stops when the test
// ends.
func silentProxy(t testing.TB, target string) (addr string, silence func()) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		silent   bool
		clients  []net.Conn
		upstream []net.Conn
		wg       sync.WaitGroup
	)
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			clients = append(clients, c)
			if silent {
				mu.Unlock()
				continue
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				mu.Unlock()
				_ = c.Close()
				continue
			}
			upstream = append(upstream, u)
			mu.Unlock()
			wg.Go(func() { _, _ = io.Copy(u, c) })
			wg.Go(func() { _, _ = io.Copy(c, u) })
		}
	})
	silence = func() {
		mu.Lock()
		defer mu.Unlock()
		silent = true
		// Both copies stop reading; every connection stays open, and
		// what either side sends goes nowhere.
		for _, c := range append(slices.Clone(clients), upstream...) {
			_ = c.SetReadDeadline(time.Now())
		}
	}
	t.Cleanup(func() {
		_ = l.Close()
		silence()
		mu.Lock()
		for _, c := range append(clients, upstream...) {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().String(), silence
}

// withAddr returns b's DSN with its host and port replaced by addr.
func withAddr(b backend, dsn, addr string) string {
	if b.name == "mysql" {
		return strings.Replace(dsn, "tcp(127.0.0.1:3306)", "tcp("+addr+")", 1)
	}
	return strings.Replace(dsn, "127.0.0.1:5432", addr, 1)
}

// logRecorder is a slog.Handler that keeps every record at or above its
// level, for tests of what the transport logs.
type logRecorder struct {
	level slog.Level
	mu    *sync.Mutex
	lines *[]string
	attrs []slog.Attr
}

func newLogRecorder(level slog.Level) *logRecorder {
	return &logRecorder{level: level, mu: &sync.Mutex{}, lines: new([]string)}
}

func (h *logRecorder) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var sb strings.Builder
	sb.WriteString(r.Level.String() + " " + r.Message)
	write := func(a slog.Attr) bool {
		sb.WriteString(" " + a.Key + "=" + a.Value.String())
		return true
	}
	for _, a := range h.attrs {
		write(a)
	}
	r.Attrs(write)
	h.mu.Lock()
	*h.lines = append(*h.lines, sb.String())
	h.mu.Unlock()
	return nil
}

func (h *logRecorder) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(slices.Clone(h.attrs), attrs...)
	return &c
}

func (h *logRecorder) WithGroup(string) slog.Handler { return h }

// Lines returns the records so far, one line each.
func (h *logRecorder) Lines() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(*h.lines)
}

// tablesWithPrefix lists the tables of b's database whose names start with
// prefix, sorted.
func tablesWithPrefix(t testing.TB, b backend, db *stdsql.DB, prefix string) []string {
	t.Helper()
	rows, err := db.Query(b.tables)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}
