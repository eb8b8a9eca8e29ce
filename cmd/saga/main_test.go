package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/millrace/millrace/cqrs"
	"github.com/millrace/millrace/cqrs/outbox"
	"github.com/millrace/millrace/framework"
	"github.com/millrace/millrace/framework/frameworktest"
	"github.com/millrace/millrace/saga"
	"github.com/millrace/millrace/saga/sagatest"
	sagasql "github.com/millrace/millrace/saga/sql"
	"github.com/millrace/millrace/transports"
)

const pgDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// service runs the order saga with PostgreSQL state on a harness: o-ok
// completes, o-stuck needs attention (its refund answers that it failed).
func service(t *testing.T) (*frameworktest.Harness, *saga.Manager[sagatest.Order], *sagatest.World, string) {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	prefix := "cli_" + hex.EncodeToString(b) + "_"
	db, err := sql.Open("pgx", pgDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, tbl := range []string{prefix + "saga", prefix + "outbox", prefix + "outbox_relay"} {
			_, _ = db.Exec("DROP TABLE IF EXISTS " + tbl)
		}
		_ = db.Close()
	})
	h := frameworktest.New(t, frameworktest.WithTimeout(time.Minute))
	w := sagatest.NewWorld("")
	w.Behave("ship", sagatest.Decline, "o-stuck")
	w.Behave("undo:charge", sagatest.Decline, "o-stuck")
	bus := cqrs.New(h.App, w.BusOptions()...)
	w.Register(bus)
	ctx := context.Background()
	ocfg := outbox.DefaultConfig(outbox.Postgres)
	ocfg.TablePrefix = prefix
	ob, err := outbox.New(ctx, bus, db, ocfg)
	if err != nil {
		t.Fatal(err)
	}
	scfg := sagasql.DefaultConfig(outbox.Postgres)
	scfg.TablePrefix = prefix
	store, err := sagasql.New(ctx, db, scfg, ob)
	if err != nil {
		t.Fatal(err)
	}
	m, err := saga.Register(bus, w.Definition(), store, w.Options()...)
	if err != nil {
		t.Fatal(err)
	}
	h.Start()
	for _, id := range []string{"o-ok", "o-stuck"} {
		if err := m.Start(ctx, id, sagatest.Order{ID: id, Amount: 3, Items: 1}); err != nil {
			t.Fatal(err)
		}
	}
	wait(t, h, m, "o-ok", saga.Completed)
	wait(t, h, m, "o-stuck", saga.NeedsAttention)
	return h, m, w, prefix
}

func wait(t *testing.T, h *frameworktest.Harness, m *saga.Manager[sagatest.Order], id string, status saga.Status) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		_, in, err := m.Get(context.Background(), id)
		if err == nil && in.Status == status {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is not %s: %v %v", id, status, in, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCLI_ListShowResume(t *testing.T) {
	h, m, w, prefix := service(t)
	c := command{
		transports: framework.Transports,
		open: func(context.Context, *framework.Config, *transports.Registry, *slog.Logger) (transports.Transport, func(), error) {
			return h.App.Transport(), func() {}, nil // the service's own in-memory broker
		},
	}
	cli := func(args ...string) (string, string, int) {
		var out, errs bytes.Buffer
		code := c.run(context.Background(), append([]string{"-dsn", pgDSN, "-table-prefix", prefix}, args...), nil, &out, &errs)
		return out.String(), errs.String(), code
	}

	// A mistyped prefix: an error naming the table, exit 1, nothing made.
	var bad bytes.Buffer
	if code := c.run(context.Background(), []string{"-dsn", pgDSN, "-table-prefix", prefix + "typo_", "list"}, nil, &bytes.Buffer{}, &bad); code != exitFail || !strings.Contains(bad.String(), prefix+"typo_saga") {
		t.Errorf("list with a mistyped prefix: exit %d, %q; want 1 naming the table", code, bad.String())
	}
	if db, err := sql.Open("pgx", pgDSN); err == nil {
		var n int
		_ = db.QueryRow(`SELECT count(*) FROM information_schema.tables WHERE table_name = $1`, prefix+"typo_saga").Scan(&n)
		_ = db.Close()
		if n != 0 {
			t.Errorf("the read-only CLI created table %ssaga", prefix+"typo_")
		}
	}
	out, errs, code := cli("list")
	if code != exitOK || !strings.Contains(out, "o-ok") || !strings.Contains(out, "completed") || !strings.Contains(out, "needs_attention") {
		t.Errorf("list: %d %q %q", code, out, errs)
	}
	out, _, _ = cli("list", "-saga", "order", "-status", "needs_attention")
	if !strings.Contains(out, "o-stuck") || strings.Contains(out, "o-ok") {
		t.Errorf("list -status needs_attention:\n%s", out)
	}
	out, errs, code = cli("show", "-saga", "order", "o-stuck")
	for _, want := range []string{"status   needs_attention", "compensation of step charge failed: RefundFailed", "charge", "compensation failed", "RefundPayment", "ShippingFailed"} {
		if code != exitOK || !strings.Contains(out, want) {
			t.Errorf("show lacks %q: %d\n%s%s", want, code, out, errs)
		}
	}
	if _, errs, code = cli("resume", "-saga", "order", "o-ok"); code != exitFail || !strings.Contains(errs, "only an instance that needs attention") {
		t.Errorf("resume of a completed saga: %d %q", code, errs)
	}
	w.Behave("undo:charge", sagatest.Succeed, "o-stuck")
	if out, errs, code = cli("resume", "-saga", "order", "o-stuck"); code != exitOK || !strings.Contains(out, "resume of order o-stuck requested on saga.order") {
		t.Fatalf("resume: %d %q %q", code, out, errs)
	}
	wait(t, h, m, "o-stuck", saga.Compensated)
}

func TestCLI_BadUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"frob"}, `unknown command "frob"`},
		{[]string{"-dsn", pgDSN, "show", "o-1"}, "give -saga NAME and one instance id"},
		{[]string{"-dsn", pgDSN, "list", "-status", "stuck"}, `-status "stuck": must be one of`},
		{[]string{"list"}, "-dsn: no DSN given"},
		{[]string{"-dsn", pgDSN, "-dialect", "oracle", "list"}, `-dialect "oracle"`},
	} {
		var out, errs bytes.Buffer
		code := run(context.Background(), tc.args, nil, &out, &errs)
		if code != exitUsage || !strings.Contains(errs.String(), tc.want) {
			t.Errorf("%v: exit %d, %q; want usage error %q", tc.args, code, errs.String(), tc.want)
		}
	}
}
