package sql_test

import (
	"context"
	stdsql "database/sql"
	"strings"
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
	open   func(context.Context, sqltransport.Config) (*sqltransport.Transport, error)
	// tables lists the tables of the current database.
	tables string
	quote  func(string) string
}

var backends = []backend{
	{
		name:   "postgres",
		driver: "pgx",
		config: sqltransport.PostgresDefaultConfig,
		open: func(ctx context.Context, c sqltransport.Config) (*sqltransport.Transport, error) {
			return sqltransport.OpenPostgres(ctx, c, transports.Deps{})
		},
		tables: "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()",
		quote:  func(s string) string { return `"` + s + `"` },
	},
	{
		name:   "mysql",
		driver: "mysql",
		config: sqltransport.MySQLDefaultConfig,
		open: func(ctx context.Context, c sqltransport.Config) (*sqltransport.Transport, error) {
			return sqltransport.OpenMySQL(ctx, c, transports.Deps{})
		},
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
	tr, err := b.open(context.Background(), c)
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
