package sql_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"strings"
	"testing"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/millrace/millrace/cqrs"
	"github.com/millrace/millrace/cqrs/outbox"
	"github.com/millrace/millrace/framework/frameworktest"
	sagasql "github.com/millrace/millrace/saga/sql"
	"github.com/millrace/millrace/saga/storetest"
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

func prefix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "sg_" + hex.EncodeToString(b) + "_"
}

// newStore returns a store on b with its outbox relaying to a harness's
// in-memory transport, and the harness.
func newStore(t *testing.T, b backend) (*sagasql.Store, *frameworktest.Harness) {
	t.Helper()
	db, err := sql.Open(b.driver, b.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	h := frameworktest.New(t, frameworktest.WithTimeout(storetest.WaitTimeout))
	bus := cqrs.New(h.App)
	p := prefix()
	ocfg := outbox.DefaultConfig(b.dialect)
	ocfg.TablePrefix = p
	ctx := context.Background()
	ob, err := outbox.New(ctx, bus, db, ocfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := sagasql.DefaultConfig(b.dialect)
	cfg.TablePrefix = p
	store, err := sagasql.New(ctx, db, cfg, ob)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, tbl := range []string{p + "saga", p + "outbox", p + "outbox_relay"} {
			_, _ = db.Exec("DROP TABLE IF EXISTS " + tbl)
		}
	})
	h.Start()
	return store, h
}

func TestStore(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) storetest.Subject {
				store, h := newStore(t, b)
				return storetest.Subject{Store: store, Sent: func(topic string) []string {
					var ids []string
					for _, m := range h.Messages(topic) {
						ids = append(ids, m.UUID)
					}
					return ids
				}}
			})
		})
	}
}

func TestConfig_Validate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  sagasql.Config
		want string
	}{
		{"no dialect", sagasql.Config{TablePrefix: "x", CallTimeout: 1}, "Dialect"},
		{"bad prefix", sagasql.Config{Dialect: outbox.MySQL, TablePrefix: "a-b", CallTimeout: 1}, "TablePrefix"},
		{"no timeout", sagasql.Config{Dialect: outbox.Postgres}, "CallTimeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want it to name %s", err, tc.want)
			}
		})
	}
	if err := sagasql.DefaultConfig(outbox.Postgres).Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}
