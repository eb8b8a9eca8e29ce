package sql_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	"go.uber.org/goleak"

	"github.com/millrace/millrace/cqrs/eventstore"
	sqlstore "github.com/millrace/millrace/cqrs/eventstore/sql"
	"github.com/millrace/millrace/cqrs/eventstore/storetest"
	"github.com/millrace/millrace/transports/transporttest"
)

func TestMain(m *testing.M) {
	flag.Parse()
	// Each check of the property test runs 32 transactions against a
	// server; 20 of them unless -rapid.checks or RAPID_CHECKS say otherwise.
	set := os.Getenv("RAPID_CHECKS") != ""
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "rapid.checks" })
	if !set {
		_ = flag.Set("rapid.checks", "20")
	}
	goleak.VerifyTestMain(m)
}

// backend is one database server the tests run against. Its DSN can be
// overridden by the environment variable named in env.
type backend struct {
	name    string
	dialect sqlstore.Dialect
	driver  string
	env     string
	dsn     string
}

var backends = []backend{
	{
		name: "Postgres", dialect: sqlstore.Postgres, driver: "pgx",
		env: "MILLRACE_TEST_POSTGRES_DSN",
		dsn: "postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
	},
	{
		name: "MySQL", dialect: sqlstore.MySQL, driver: "mysql",
		env: "MILLRACE_TEST_MYSQL_DSN",
		dsn: "root@tcp(127.0.0.1:3306)/test?interpolateParams=true",
	},
}

// forEachBackend runs f as a subtest per backend.
func forEachBackend(t *testing.T, f func(t *testing.T, b backend)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { f(t, b) })
	}
}

// open connects to b's server, skipping the test if it is not reachable.
// The pool is closed when t ends.
func (b backend) open(t testing.TB) *sql.DB {
	t.Helper()
	dsn := b.dsn
	if v := os.Getenv(b.env); v != "" {
		dsn = v
	}
	db, err := sql.Open(b.driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	// Enough for the 32 writers and the follower of the property test,
	// and well below the servers' connection limits.
	db.SetMaxOpenConns(40)
	db.SetMaxIdleConns(40)
	t.Cleanup(func() { _ = db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Skipf("%s not reachable (set %s): %v", b.name, b.env, err)
	}
	return db
}

// newStore returns a store on tables of a new prefix in db, dropped when t
// ends.
func (b backend) newStore(t testing.TB, db *sql.DB, opts ...sqlstore.Option) *sqlstore.Store {
	t.Helper()
	prefix := "es_test_" + randomHex(t) + "_"
	s, err := sqlstore.New(db, b.dialect, append([]sqlstore.Option{sqlstore.TablePrefix(prefix)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSchema(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, table := range []string{"events", "streams", "snapshots", "sequence"} {
			if _, err := db.ExecContext(context.Background(), "DROP TABLE IF EXISTS "+b.quote(prefix+table)); err != nil {
				t.Errorf("drop %s%s: %v", prefix, table, err)
			}
		}
	})
	return s
}

func (b backend) quote(name string) string {
	if b.dialect == sqlstore.MySQL {
		return "`" + name + "`"
	}
	return `"` + name + `"`
}

func randomHex(t testing.TB) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

func TestStore_Contract(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		db := b.open(t)
		storetest.Run(t, func(t *testing.T, u *eventstore.Upcasters) eventstore.Store {
			return b.newStore(t, db, sqlstore.UpcastWith(u))
		})
	})
}

func TestStore_Snapshots(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		db := b.open(t)
		storetest.RunSnapshots(t, func(t *testing.T) eventstore.SnapshotStore {
			return b.newStore(t, db)
		})
	})
}

func TestStore_FollowerSeesEveryCommittedEventOnceInOrder(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		db := b.open(t)
		storetest.RunFollow(t, storetest.SQL(b.newStore(t, db), db))
	})
}

func TestNew_RejectsBadPrefixesAndDialects(t *testing.T) {
	db, err := sql.Open("pgx", "postgres://127.0.0.1:1/none")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	tests := []struct {
		prefix  string
		dialect sqlstore.Dialect
		ok      bool
	}{
		{"es_", sqlstore.Postgres, true},
		{"", sqlstore.MySQL, true},
		{"_Es2_", sqlstore.MySQL, true},
		{"2es_", sqlstore.Postgres, false},
		{"es;drop table x;", sqlstore.Postgres, false},
		{`es"`, sqlstore.Postgres, false},
		{"es`", sqlstore.MySQL, false},
		{"public.es_", sqlstore.Postgres, false},
		{"és_", sqlstore.Postgres, false},
		{strings.Repeat("p", 41), sqlstore.Postgres, false},
		{"es_", sqlstore.Dialect(0), false},
	}
	for _, tt := range tests {
		_, err := sqlstore.New(db, tt.dialect, sqlstore.TablePrefix(tt.prefix))
		if (err == nil) != tt.ok {
			t.Errorf("New(%v, TablePrefix(%q)): err = %v, want ok=%v", tt.dialect, tt.prefix, err, tt.ok)
		}
	}
	if _, err := sqlstore.New(nil, sqlstore.Postgres); err == nil {
		t.Error("New(nil db): want an error")
	}
}

func TestStore_CallsOnAServerThatNeverAnswersAreBounded(t *testing.T) {
	addr := transporttest.SilentServer(t)
	dsns := map[string]string{
		"Postgres": "postgres://postgres@" + addr + "/test?sslmode=disable",
		"MySQL":    "root@tcp(" + addr + ")/test",
	}
	forEachBackend(t, func(t *testing.T, b backend) {
		db, err := sql.Open(b.driver, dsns[b.name])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		s, err := sqlstore.New(db, b.dialect, sqlstore.CallTimeout(200*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		calls := map[string]func() error{
			"CreateSchema": func() error { return s.CreateSchema(ctx) },
			"Append": func() error {
				_, err := s.Append(ctx, "s", eventstore.Any, []eventstore.Event{{Type: "A"}})
				return err
			},
			"ReadStream": func() error {
				_, err := s.ReadStream(ctx, "s", 1, eventstore.ReadOptions{})
				return err
			},
			"ReadAll": func() error {
				_, err := s.ReadAll(ctx, eventstore.Start, 10)
				return err
			},
			"SaveSnapshot": func() error {
				return s.SaveSnapshot(ctx, eventstore.Snapshot{StreamID: "s", Version: 1, Type: "T"})
			},
			"LoadSnapshot": func() error {
				_, _, err := s.LoadSnapshot(ctx, "s", 1)
				return err
			},
		}
		for name, call := range calls {
			start := time.Now()
			err := call()
			if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "CallTimeout of 200ms") {
				t.Errorf("%s = %v, want the deadline, naming CallTimeout of 200ms", name, err)
			}
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("%s gave up after %v, want about the 200ms call timeout", name, took)
			}
		}
	})
}
