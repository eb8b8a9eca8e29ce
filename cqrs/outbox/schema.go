package outbox

import (
	"fmt"
	"strings"
)

// statements are a dialect's SQL for one table prefix.
type statements struct {
	schema  []string // CREATE ... IF NOT EXISTS, in order
	insert  func(n int) string
	lock    string // the relay's lease: one relay moves messages at a time
	unsent  string // the next batch, oldest first
	markOne string // UPDATE ... for ids (built per batch: see mark)
	cleanup string
	backlog string // unsent messages, and the oldest one's age in seconds
	channel string // PostgreSQL's NOTIFY channel
}

func newStatements(d Dialect, prefix string) statements {
	table := prefix + "outbox"
	switch d {
	case Postgres:
		q := `"` + table + `"`
		return statements{
			schema: []string{
				`CREATE TABLE IF NOT EXISTS ` + q + ` (
	id BIGSERIAL PRIMARY KEY,
	tx xid8 NOT NULL DEFAULT pg_current_xact_id(),
	topic TEXT NOT NULL,
	uuid TEXT NOT NULL,
	payload BYTEA NOT NULL,
	metadata JSONB NOT NULL,
	created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
	sent_at TIMESTAMPTZ
)`,
				`CREATE INDEX IF NOT EXISTS "` + table + `_unsent" ON ` + q + ` (tx, id) WHERE sent_at IS NULL`,
				`CREATE INDEX IF NOT EXISTS "` + table + `_sent" ON ` + q + ` (sent_at) WHERE sent_at IS NOT NULL`,
				`CREATE OR REPLACE FUNCTION "` + table + `_notify"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_notify('` + table + `', ''); RETURN NULL; END $$`,
				`CREATE OR REPLACE TRIGGER "` + table + `_notify" AFTER INSERT ON ` + q + ` FOR EACH STATEMENT EXECUTE FUNCTION "` + table + `_notify"()`,
			},
			insert: func(n int) string {
				var b strings.Builder
				b.WriteString(`INSERT INTO ` + q + ` (topic, uuid, payload, metadata) VALUES `)
				for i := range n {
					if i > 0 {
						b.WriteString(", ")
					}
					fmt.Fprintf(&b, "($%d, $%d, $%d, $%d)", 4*i+1, 4*i+2, 4*i+3, 4*i+4)
				}
				return b.String()
			},
			lock: `SELECT pg_try_advisory_xact_lock(hashtext('` + table + `'))`,
			// Below the oldest running transaction, so that a message of a
			// transaction that has not committed yet is never passed.
			unsent: `SELECT id, topic, uuid, payload, metadata FROM ` + q + `
WHERE sent_at IS NULL AND tx < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY tx, id LIMIT $1`,
			markOne: `UPDATE ` + q + ` SET sent_at = clock_timestamp() WHERE id = ANY($1)`,
			cleanup: `DELETE FROM ` + q + ` WHERE id IN (SELECT id FROM ` + q + ` WHERE sent_at < clock_timestamp() - $1 * interval '1 millisecond' LIMIT $2)`,
			backlog: `SELECT COUNT(*), COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - MIN(created_at)), 0)::float8 FROM ` + q + ` WHERE sent_at IS NULL`,
			channel: table,
		}
	default:
		q := "`" + table + "`"
		relay := "`" + table + "_relay`"
		return statements{
			schema: []string{
				`CREATE TABLE IF NOT EXISTS ` + q + ` (
	id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
	topic VARCHAR(255) NOT NULL,
	uuid VARCHAR(255) NOT NULL,
	payload LONGBLOB NOT NULL,
	metadata JSON NOT NULL,
	created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	sent_at DATETIME(6) NULL,
	KEY unsent (sent_at, id)
)`,
				`CREATE TABLE IF NOT EXISTS ` + relay + ` (name VARCHAR(64) NOT NULL PRIMARY KEY)`,
				`INSERT IGNORE INTO ` + relay + ` (name) VALUES ('relay')`,
			},
			insert: func(n int) string {
				var b strings.Builder
				b.WriteString(`INSERT INTO ` + q + ` (topic, uuid, payload, metadata) VALUES `)
				for i := range n {
					if i > 0 {
						b.WriteString(", ")
					}
					b.WriteString("(?, ?, ?, ?)")
				}
				return b.String()
			},
			lock:    `SELECT name FROM ` + relay + ` WHERE name = 'relay' FOR UPDATE SKIP LOCKED`,
			unsent:  `SELECT id, topic, uuid, payload, metadata FROM ` + q + ` WHERE sent_at IS NULL ORDER BY id LIMIT ?`,
			markOne: `UPDATE ` + q + ` SET sent_at = CURRENT_TIMESTAMP(6) WHERE id IN `,
			cleanup: `DELETE FROM ` + q + ` WHERE sent_at < NOW(6) - INTERVAL ? MICROSECOND LIMIT ?`,
			backlog: `SELECT COUNT(*), COALESCE(TIMESTAMPDIFF(MICROSECOND, MIN(created_at), NOW(6)) / 1e6, 0) FROM ` + q + ` WHERE sent_at IS NULL`,
		}
	}
}
