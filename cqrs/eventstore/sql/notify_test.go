package sql_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace/cqrs/eventstore"
	sqlstore "github.com/millrace/millrace/cqrs/eventstore/sql"
)

func TestStore_PostgresAppendsNotifyTheirChannelOnCommit(t *testing.T) {
	b := backends[0]
	db := b.open(t)
	s := b.newStore(t, db)
	// CreateSchema again: the trigger is there once.
	if err := s.CreateSchema(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dsn := b.dsn
	if v := os.Getenv(b.env); v != "" {
		dsn = v
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if _, err := conn.Exec(ctx, `LISTEN "`+s.NotifyChannel()+`"`); err != nil {
		t.Fatal(err)
	}
	appends := map[string]func() error{
		"Append": func() error {
			_, err := s.Append(ctx, "n-1", eventstore.Any, []eventstore.Event{{Type: "A"}, {Type: "B"}})
			return err
		},
		"AppendTx": func() error {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			if _, err := s.AppendTx(ctx, tx, "n-2", eventstore.Any, []eventstore.Event{{Type: "A"}}); err != nil {
				_ = tx.Rollback()
				return err
			}
			return tx.Commit()
		},
	}
	for name, appendOnce := range appends {
		if err := appendOnce(); err != nil {
			t.Fatal(err)
		}
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			t.Fatalf("%s: no notification: %v", name, err)
		}
		if n.Channel != s.NotifyChannel() {
			t.Errorf("%s: notified %q, want %q", name, n.Channel, s.NotifyChannel())
		}
	}
	// One transaction, one notification.
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	if n, err := conn.WaitForNotification(short); err == nil {
		t.Errorf("a second notification %+v for one commit", n)
	}
	my, err := sqlstore.New(db, sqlstore.MySQL)
	if err != nil {
		t.Fatal(err)
	}
	if my.NotifyChannel() != "" {
		t.Errorf("MySQL NotifyChannel = %q, want none", my.NotifyChannel())
	}
}
