package readme_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/millrace/millrace/cqrs/cqrstest"
	"github.com/millrace/millrace/examples/readme"
	"github.com/millrace/millrace/framework"
	"github.com/millrace/millrace/framework/frameworktest"
)

const postgres = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

func TestREADME_PaymentsChargeOnceAndPublishAfterCommit(t *testing.T) {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	dedup := "readme_dedup_" + hex.EncodeToString(b)
	h, bus := cqrstest.New(t, frameworktest.WithTimeout(30*time.Second), frameworktest.WithConfig(`
middleware:
  dedup:
    store: postgres
    dsn: `+postgres+`
    table: `+dedup+`
`))
	db, err := sql.Open("pgx", postgres)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = db.Exec(`DROP TABLE IF EXISTS payments`)
		_, _ = db.Exec(`DROP TABLE IF EXISTS ` + dedup)
		_ = db.Close()
	})
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS payments (order_id TEXT, cents INT)`); err != nil {
		t.Fatal(err)
	}
	ob, err := readme.NewOutbox(context.Background(), bus, db)
	if err != nil {
		t.Fatal(err)
	}
	readme.RegisterPayments(bus, ob)
	h.Start()
	flow := cqrstest.Send(h, bus, readme.ChargeCard{OrderID: "o-1", Cents: 1250}, framework.WithID("charge-o-1"))
	cqrstest.Send(h, bus, readme.ChargeCard{OrderID: "o-1", Cents: 1250}, framework.WithID("charge-o-1")) // redelivered
	if got := cqrstest.WaitEvents[readme.CardCharged](h, bus, flow, 1); got[0].OrderID != "o-1" {
		t.Errorf("charged %v", got)
	}
	h.WaitUntil("both deliveries handled", func() bool { return len(h.Outcomes("ChargeCard")) == 2 })
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM payments WHERE order_id = 'o-1'`).Scan(&n); err != nil || n != 1 {
		t.Errorf("%d payment rows (%v), want 1", n, err)
	}
}
