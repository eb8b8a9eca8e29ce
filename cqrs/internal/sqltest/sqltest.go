// Package sqltest opens the PostgreSQL and MySQL servers the tests of the
// cqrs packages run against, and gives each test event store tables of its
// own, dropped when it ends.
package sqltest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // the MySQL driver
	_ "github.com/jackc/pgx/v5/stdlib" // the PostgreSQL driver

	sqlstore "github.com/millrace/millrace/cqrs/eventstore/sql"
)

// Backend is one database server the tests run against. Its DSN can be
// overridden by the environment variable named in Env.
type Backend struct {
	Name    string
	Dialect sqlstore.Dialect
	Driver  string
	Env     string
	DSN     string
}

// Backends are the servers of the machine: PostgreSQL and MariaDB.
var Backends = []Backend{
	{
		Name: "Postgres", Dialect: sqlstore.Postgres, Driver: "pgx",
		Env: "MILLRACE_TEST_POSTGRES_DSN",
		DSN: "postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
	},
	{
		Name: "MySQL", Dialect: sqlstore.MySQL, Driver: "mysql",
		Env: "MILLRACE_TEST_MYSQL_DSN",
		DSN: "root@tcp(127.0.0.1:3306)/test?interpolateParams=true",
	},
}

// ForEach runs f as a subtest per backend.
func ForEach(t *testing.T, f func(t *testing.T, b Backend)) {
	for _, b := range Backends {
		t.Run(b.Name, func(t *testing.T) { f(t, b) })
	}
}

// DataSource returns the backend's DSN, from the environment if set.
func (b Backend) DataSource() string {
	if v := os.Getenv(b.Env); v != "" {
		return v
	}
	return b.DSN
}

// Open connects to b's server, skipping the test if it is not reachable.
// The pool is closed when t ends.
func (b Backend) Open(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open(b.Driver, b.DataSource())
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(40)
	db.SetMaxIdleConns(40)
	t.Cleanup(func() { _ = db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Skipf("%s not reachable (set %s): %v", b.Name, b.Env, err)
	}
	return db
}

// Prefix returns a new table prefix for one test.
func Prefix(t testing.TB) string {
	t.Helper()
	var r [6]byte
	if _, err := rand.Read(r[:]); err != nil {
		t.Fatal(err)
	}
	return "es_test_" + hex.EncodeToString(r[:]) + "_"
}

// NewStore returns an event store on tables of a new prefix in db, with
// its schema created; the tables are dropped when t ends.
func (b Backend) NewStore(t testing.TB, db *sql.DB, opts ...sqlstore.Option) *sqlstore.Store {
	t.Helper()
	return b.StoreAt(t, db, Prefix(t), true, opts...)
}

// StoreAt returns an event store on the tables of prefix in db, with its
// schema created; with drop, the tables are dropped when t ends.
func (b Backend) StoreAt(t testing.TB, db *sql.DB, prefix string, drop bool, opts ...sqlstore.Option) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.New(db, b.Dialect, append([]sqlstore.Option{sqlstore.TablePrefix(prefix)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSchema(context.Background()); err != nil {
		t.Fatal(err)
	}
	if drop {
		t.Cleanup(func() { b.DropTables(t, db, prefix, "events", "streams", "snapshots", "sequence") })
	}
	return s
}

// DropTables drops the tables prefix+name, if they exist.
func (b Backend) DropTables(t testing.TB, db *sql.DB, prefix string, names ...string) {
	t.Helper()
	for _, name := range names {
		if _, err := db.ExecContext(context.Background(), "DROP TABLE IF EXISTS "+b.Quote(prefix+name)); err != nil {
			t.Errorf("drop %s%s: %v", prefix, name, err)
		}
	}
}

// Quote quotes an identifier for b's dialect.
func (b Backend) Quote(name string) string {
	if b.Dialect == sqlstore.MySQL {
		return "`" + name + "`"
	}
	return `"` + name + `"`
}
