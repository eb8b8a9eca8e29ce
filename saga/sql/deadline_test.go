package sql_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/millrace/millrace/cqrs"
	"github.com/millrace/millrace/cqrs/outbox"
	"github.com/millrace/millrace/framework/frameworktest"
	"github.com/millrace/millrace/saga"
	sagasql "github.com/millrace/millrace/saga/sql"
	"github.com/millrace/millrace/saga/storetest"
)

// A database that does not answer (here: every row locked by another
// transaction) costs each Save at most its CallTimeout, however many saves
// share its batch: a batch that ran out of time is not run again save by
// save.
func TestSave_WaitsAtMostItsCallTimeout(t *testing.T) {
	b := backends[0]
	db, err := sql.Open(b.driver, b.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	h := frameworktest.New(t, frameworktest.WithTimeout(storetest.WaitTimeout))
	p := prefix()
	ocfg := outbox.DefaultConfig(b.dialect)
	ocfg.TablePrefix = p
	ctx := context.Background()
	ob, err := outbox.New(ctx, cqrs.New(h.App), db, ocfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := sagasql.DefaultConfig(b.dialect)
	cfg.TablePrefix = p
	cfg.CallTimeout = 300 * time.Millisecond
	store, err := sagasql.New(ctx, db, cfg, ob)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, tbl := range []string{p + "saga", p + "outbox", p + "outbox_relay"} {
			_, _ = db.Exec("DROP TABLE IF EXISTS " + tbl)
		}
	})
	const n = 12
	mk := func(i int, v int64) *saga.Instance {
		now := time.Now().UTC()
		return &saga.Instance{Saga: "dl", ID: fmt.Sprint("i-", i), Status: saga.Running, Version: v, State: []byte(`{}`), Created: now, Updated: now}
	}
	for i := range n {
		if err := store.Save(ctx, mk(i, 1), 0, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	lock, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lock.Rollback() }()
	if _, err := lock.Exec(`SELECT 1 FROM "` + p + `saga" FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	took := make([]time.Duration, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			start := time.Now()
			errs[i] = store.Save(ctx, mk(i, 2), 1, nil, nil)
			took[i] = time.Since(start)
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] == nil || !strings.Contains(errs[i].Error(), "CallTimeout") {
			t.Errorf("save %d: %v, want an error naming CallTimeout", i, errs[i])
		}
		// Generous for a loaded machine, well below a re-run save by save.
		if took[i] > 4*cfg.CallTimeout {
			t.Errorf("save %d took %s, CallTimeout is %s", i, took[i], cfg.CallTimeout)
		}
	}
}
