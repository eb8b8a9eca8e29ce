package projection_test

import (
	"context"
	"database/sql"
	"log"

	"github.com/millrace/millrace/cqrs/eventstore"
	sqlstore "github.com/millrace/millrace/cqrs/eventstore/sql"
	"github.com/millrace/millrace/cqrs/projection"
)

// A projection of deposits into a balances table, following a PostgreSQL
// event store, then rebuilt from the first event.
func ExampleNew() {
	ctx := context.Background()
	db, err := sql.Open("pgx", "postgres://app@db:5432/bank?sslmode=disable")
	if err != nil {
		log.Fatal(err)
	}
	store, err := sqlstore.New(db, sqlstore.Postgres)
	if err != nil {
		log.Fatal(err)
	}
	p, err := projection.New(ctx, db, store, projection.Definition{
		Name:   "balances",
		Tables: []string{"balances"},
		Schema: func(g projection.Generation) []string {
			return []string{"CREATE TABLE " + g.Table("balances") + " (account TEXT PRIMARY KEY, balance BIGINT NOT NULL)"}
		},
		Handlers: []projection.Handler{
			projection.On(func(ctx context.Context, tx *sql.Tx, g projection.Generation, d Deposited, e eventstore.Event) error {
				_, err := tx.ExecContext(ctx, "INSERT INTO "+g.Table("balances")+` AS b (account, balance) VALUES ($1, $2)
					ON CONFLICT (account) DO UPDATE SET balance = b.balance + excluded.balance`, e.StreamID, d.Amount)
				return err
			}),
		},
	}, projection.DefaultConfig(sqlstore.Postgres))
	if err != nil {
		log.Fatal(err)
	}
	go func() { _ = p.Run(ctx) }() // or p.RunIn(app)

	// Later, after a handler changed: build balances_g2 from the first
	// event while balances_g1 serves, then switch the view "balances".
	if err := p.Rebuild(ctx); err != nil {
		log.Fatal(err)
	}
}
