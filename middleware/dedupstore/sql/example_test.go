package sql_test

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/millrace/millrace/middleware"
	sqlstore "github.com/millrace/millrace/middleware/dedupstore/sql"
)

// A handler whose writes and dedup mark commit in one transaction: if the
// claim was lost meanwhile, the writes roll back with it.
func ExampleStore_CompleteTx() {
	ctx := context.Background()
	db, err := sql.Open("pgx", "postgres://app@127.0.0.1:5432/app?sslmode=disable")
	if err != nil {
		panic(err)
	}
	defer db.Close()
	store, err := sqlstore.New(db, sqlstore.Postgres, "millrace_dedup")
	if err != nil {
		panic(err)
	}

	key, owner := "order-42", "delivery-7f3a"
	res, err := store.Claim(ctx, key, owner, 30*time.Second)
	if err != nil || res != middleware.Claimed {
		return // unavailable: nack; Busy: nack; AlreadyDone: ack
	}
	err = func() error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(ctx, `UPDATE orders SET paid = true WHERE id = 42`); err != nil {
			return err
		}
		if err := store.CompleteTx(ctx, tx, key, owner, 24*time.Hour); err != nil {
			return err // sqlstore.ErrLeaseLost: another delivery took over
		}
		return tx.Commit()
	}()
	if err != nil && !errors.Is(err, sqlstore.ErrLeaseLost) {
		_ = store.Release(ctx, key, owner) // let a redelivery try at once
	}
}
