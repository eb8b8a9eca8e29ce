package sql

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/transports"
)

// On PostgreSQL a subscription's query reads batch_size rows from the
// primary key, however large the backlog: no sort of every unconsumed row.
//
// The query only reads rows of transactions older than every transaction
// still running in the server (pg_snapshot_xmin), and other test packages
// run transactions on the same server meanwhile (their subscriptions hold
// one while they deliver a batch): the test first waits until the backlog
// is visible, as it will stay, and so holds whatever else runs.
func TestSelectQuery_PostgresScansOnlyABatch(t *testing.T) {
	ctx := context.Background()
	cfg := PostgresDefaultConfig()
	cfg.TablePrefix = "sel" + strings.ToLower(watermill.NewShortUUID()[:8]) + "_"
	tr, err := OpenPostgres(ctx, *cfg, transports.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	topic := "backlog"
	t.Cleanup(func() {
		for _, table := range []string{tr.schema.messagesTable(topic), tr.schema.offsetsTable(topic), tr.schema.d.tableName(cfg.TablePrefix, "", "delayed")} {
			if _, err := tr.db.ExecContext(ctx, "DROP TABLE IF EXISTS "+table); err != nil {
				t.Error(err)
			}
		}
		_ = tr.Close()
	})
	// A backlog of 5,000 messages in 50 transactions.
	for range 50 {
		msgs := make([]*message.Message, 100)
		for i := range msgs {
			msgs[i] = message.NewMessage(watermill.NewUUID(), []byte("{}"))
		}
		if err := tr.Publisher().Publish(topic, msgs...); err != nil {
			t.Fatal(err)
		}
	}
	sch := tr.schema.forTopic(topic)
	offsets := sch.offsets()
	before, err := offsets.BeforeSubscribingQueries(wsql.BeforeSubscribingQueriesParams{Topic: topic, ConsumerGroup: "g"})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range before {
		if _, err := tr.db.ExecContext(ctx, q.Query, q.Args...); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tr.db.ExecContext(ctx, "ANALYZE "+sch.messagesTable(topic)); err != nil {
		t.Fatal(err)
	}
	waitVisible(t, tr, sch.messagesTable(topic), 5000)

	q, err := sch.SelectQuery(wsql.SelectQueryParams{Topic: topic, ConsumerGroup: "g", OffsetsAdapter: offsets})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := tr.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	rows, err := tx.QueryContext(ctx, "EXPLAIN (ANALYZE, COSTS OFF) "+q.Query, q.Args...)
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	text := strings.Join(plan, "\n")
	want := fmt.Sprintf("Index Scan using %s_pkey", strings.Trim(sch.messagesTable(topic), `"`))
	if !strings.Contains(text, want) || strings.Contains(text, "Sort") {
		t.Errorf("plan does not read the batch from the primary key (%q, no Sort):\n%s", want, text)
	}
	if !strings.Contains(text, fmt.Sprintf("rows=%d loops=1", cfg.BatchSize)) {
		t.Errorf("plan does not stop after batch_size (%d) rows:\n%s", cfg.BatchSize, text)
	}
}

// waitVisible waits until the n rows of table are below the current
// snapshot's xmin, that is, until every transaction that was running when
// they were committed has ended. xmin never goes back, so they stay
// visible. After a minute it fails the test, naming the oldest transaction
// that holds xmin back.
func waitVisible(t *testing.T, tr *Transport, table string, n int) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(time.Minute)
	for {
		var visible int
		err := tr.db.QueryRowContext(ctx, "SELECT count(*) FROM "+table+
			" WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())").Scan(&visible)
		if err != nil {
			t.Fatal(err)
		}
		if visible == n {
			return
		}
		if time.Now().After(deadline) {
			var holder string
			_ = tr.db.QueryRowContext(ctx, `SELECT coalesce(string_agg(format('pid %s (%s, %s): %s', pid, datname, state, left(query, 80)), '; '), 'none found')
				FROM pg_stat_activity WHERE backend_xid::text::bigint = pg_snapshot_xmin(pg_current_snapshot())::text::bigint % 4294967296`).Scan(&holder)
			t.Fatalf("after a minute %d of %d rows visible; transaction holding xmin back: %s", visible, n, holder)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
