package sql

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/transports"
)

// On PostgreSQL a subscription's query reads batch_size rows from the
// primary key, however large the backlog: no sort of every unconsumed row.
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
