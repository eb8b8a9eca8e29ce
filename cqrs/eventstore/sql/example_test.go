package sql_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/millrace/millrace/cqrs/eventstore"
	sqlstore "github.com/millrace/millrace/cqrs/eventstore/sql"
)

// A command handler's append: a conflict means another command changed the
// stream first.
func ExampleNew() {
	ctx := context.Background()
	db, err := sql.Open("pgx", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	if err != nil {
		panic(err)
	}
	defer db.Close()
	store, err := sqlstore.New(db, sqlstore.Postgres, sqlstore.TablePrefix("example_"))
	if err != nil {
		panic(err)
	}
	if err := store.CreateSchema(ctx); err != nil {
		fmt.Println("database not reachable:", err)
		return
	}
	_, err = store.Append(ctx, "order-42", 3, []eventstore.Event{{Type: "OrderPaid.v1", Payload: []byte(`{"amount":42}`)}})
	var conflict *eventstore.ConflictError
	if errors.As(err, &conflict) {
		fmt.Println("order-42 is at version", conflict.Actual, "now: load it again and retry")
	}
}

// Events appended in the caller's transaction are stored if and only if it
// commits, with whatever else it writes.
func ExampleStore_AppendTx() {
	ctx := context.Background()
	db, err := sql.Open("pgx", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	if err != nil {
		panic(err)
	}
	defer db.Close()
	store, err := sqlstore.New(db, sqlstore.Postgres)
	if err != nil {
		panic(err)
	}
	err = func() error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(ctx, `UPDATE order_totals SET paid = paid + 42`); err != nil {
			return err
		}
		if _, err := store.AppendTx(ctx, tx, "order-42", eventstore.Any, []eventstore.Event{{Type: "OrderPaid.v1"}}); err != nil {
			return err
		}
		return tx.Commit()
	}()
	if err != nil {
		fmt.Println(err)
	}
}

// A projection follows the global order from its checkpoint.
func ExampleStore_ReadAll() {
	ctx := context.Background()
	db, err := sql.Open("mysql", "root@tcp(127.0.0.1:3306)/test?interpolateParams=true")
	if err != nil {
		panic(err)
	}
	defer db.Close()
	store, err := sqlstore.New(db, sqlstore.MySQL)
	if err != nil {
		panic(err)
	}
	checkpoint := eventstore.Start // stored with the read model, as checkpoint.String()
	for {
		events, err := store.ReadAll(ctx, checkpoint, 500)
		if err != nil || len(events) == 0 {
			return // caught up (or failed): poll again later
		}
		for _, e := range events {
			_ = e // apply e to the read model
			checkpoint = e.Position
		}
	}
}
