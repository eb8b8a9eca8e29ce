package sql_test

import (
	"context"
	stdsql "database/sql"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/transports"
	sqltransport "github.com/millrace/millrace/transports/sql"
)

// A message published through TxPublisher is part of the caller's
// transaction: it reaches subscribers if, and only if, the order row is
// committed too.
func ExampleTransport_TxPublisher() {
	ctx := context.Background()
	cfg := sqltransport.PostgresDefaultConfig()
	tr, err := sqltransport.OpenPostgres(ctx, *cfg, transports.Deps{})
	if err != nil {
		panic(err)
	}
	defer tr.Close()
	db, err := stdsql.Open("pgx", cfg.DSN)
	if err != nil {
		panic(err)
	}
	defer db.Close()

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		panic(err)
	}
	defer tx.Rollback() // no-op after Commit
	if _, err := tx.ExecContext(ctx, "INSERT INTO orders (id) VALUES ($1)", 42); err != nil {
		panic(err)
	}
	event := message.NewMessage(watermill.NewUUID(), []byte(`{"order_id":42}`))
	if err := tr.TxPublisher(tx).Publish("orders.placed", event); err != nil {
		panic(err)
	}
	if err := tx.Commit(); err != nil {
		panic(err)
	}
}
