package sql

import (
	"fmt"
	"strings"
)

// Dialect selects the SQL a Store speaks. Each dialect's statements use
// the database's clock, never the caller's, so processes with skewed clocks
// agree on when a lease or ttl ends.
type Dialect int

const (
	// Postgres is PostgreSQL 9.5 or later (INSERT ... ON CONFLICT), used
	// through a database/sql driver such as github.com/jackc/pgx/v5/stdlib.
	Postgres Dialect = iota + 1
	// MySQL is MySQL 5.7+/8 or MariaDB 10.3+ with InnoDB, used through
	// github.com/go-sql-driver/mysql. Times are kept in UTC_TIMESTAMP, so
	// the session time zone does not matter.
	MySQL
)

// String returns the dialect's name.
func (d Dialect) String() string {
	switch d {
	case Postgres:
		return "Postgres"
	case MySQL:
		return "MySQL"
	}
	return fmt.Sprintf("Dialect(%d)", int(d))
}

// States stored in the state column.
const (
	stateInflight = "inflight"
	stateDone     = "done"
)

// statements holds the SQL of one dialect for one table.
type statements struct {
	// schema creates the table and its expiry index; each runs on its own.
	schema []string
	// claim takes key $1 for owner $2 for $3 microseconds if it is free or
	// its row has expired. Postgres: returns a row iff it took the key.
	// MySQL: returns nothing; lookup tells the outcome.
	claim string
	// claimReturns reports whether claim returns a row iff it took the key.
	claimReturns bool
	// lookup returns (done, owned by $2, live) for key $1's row.
	lookup string
	// complete marks key $1 done for $3 microseconds if owner $2 holds it.
	complete string
	// release deletes key $1 if owner $2 holds it in flight.
	release string
	// purge deletes every expired row.
	purge string
}

// maxTableLen keeps the table name and the index name derived from it
// within PostgreSQL's 63 and MySQL's 64 byte identifier limits.
const maxTableLen = 48

// validTable reports whether table is a plain identifier: a letter or
// underscore, then letters, digits or underscores. Only such names are
// spliced into SQL, so a table name cannot inject anything.
func validTable(table string) bool {
	if table == "" || len(table) > maxTableLen {
		return false
	}
	for i, c := range []byte(table) {
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// newStatements renders d's statements for table, which must be valid.
func newStatements(d Dialect, table string) (statements, error) {
	r := strings.NewReplacer("{t}", table, "{inflight}", stateInflight, "{done}", stateDone)
	switch d {
	case Postgres:
		return statements{
			schema: []string{
				r.Replace(`CREATE TABLE IF NOT EXISTS "{t}" (
	dedup_key  text COLLATE "C" PRIMARY KEY,
	owner      text NOT NULL,
	state      text NOT NULL CHECK (state IN ('{inflight}', '{done}')),
	expires_at timestamptz NOT NULL
)`),
				r.Replace(`CREATE INDEX IF NOT EXISTS "{t}_expires_at_idx" ON "{t}" (expires_at)`),
			},
			// ON CONFLICT locks the conflicting row and evaluates WHERE on
			// its latest committed version, so of concurrent claimers of a
			// free or expired key exactly one gets a row back.
			claim: r.Replace(`INSERT INTO "{t}" AS t (dedup_key, owner, state, expires_at)
VALUES ($1, $2, '{inflight}', now() + $3::bigint * interval '1 microsecond')
ON CONFLICT (dedup_key) DO UPDATE
SET owner = excluded.owner, state = excluded.state, expires_at = excluded.expires_at
WHERE t.expires_at <= now()
RETURNING 1`),
			claimReturns: true,
			lookup:       r.Replace(`SELECT state = '{done}', owner = $2, expires_at > now() FROM "{t}" WHERE dedup_key = $1`),
			complete: r.Replace(`UPDATE "{t}" SET state = '{done}', expires_at = now() + $3::bigint * interval '1 microsecond'
WHERE dedup_key = $1 AND owner = $2`),
			release: r.Replace(`DELETE FROM "{t}" WHERE dedup_key = $1 AND owner = $2 AND state = '{inflight}'`),
			purge:   r.Replace(`DELETE FROM "{t}" WHERE expires_at <= now()`),
		}, nil
	case MySQL:
		// Parameters are positional, so the ones used twice are passed twice;
		// see Store.args.
		return statements{
			schema: []string{
				r.Replace("CREATE TABLE IF NOT EXISTS `{t}` (\n" +
					"\tdedup_key  VARBINARY(255) NOT NULL PRIMARY KEY,\n" +
					"\towner      VARBINARY(255) NOT NULL,\n" +
					"\tstate      VARCHAR(8) CHARACTER SET ascii NOT NULL,\n" +
					"\texpires_at DATETIME(6) NOT NULL,\n" +
					"\tINDEX `{t}_expires_at_idx` (expires_at)\n" +
					") ENGINE=InnoDB"),
			},
			// The duplicate-key update holds the row's exclusive lock and
			// sees its latest version. expires_at is assigned last, so every
			// IF() tests the old expiry; UTC_TIMESTAMP is fixed for the
			// statement. A live row is left untouched.
			claim: r.Replace("INSERT INTO `{t}` (dedup_key, owner, state, expires_at)\n" +
				"VALUES (?, ?, '{inflight}', DATE_ADD(UTC_TIMESTAMP(6), INTERVAL ? MICROSECOND))\n" +
				"ON DUPLICATE KEY UPDATE\n" +
				"owner = IF(expires_at <= UTC_TIMESTAMP(6), ?, owner),\n" +
				"state = IF(expires_at <= UTC_TIMESTAMP(6), '{inflight}', state),\n" +
				"expires_at = IF(expires_at <= UTC_TIMESTAMP(6), DATE_ADD(UTC_TIMESTAMP(6), INTERVAL ? MICROSECOND), expires_at)"),
			lookup: r.Replace("SELECT state = '{done}', owner = ?, expires_at > UTC_TIMESTAMP(6) FROM `{t}` WHERE dedup_key = ?"),
			complete: r.Replace("UPDATE `{t}` SET state = '{done}', expires_at = DATE_ADD(UTC_TIMESTAMP(6), INTERVAL ? MICROSECOND)\n" +
				"WHERE dedup_key = ? AND owner = ?"),
			release: r.Replace("DELETE FROM `{t}` WHERE dedup_key = ? AND owner = ? AND state = '{inflight}'"),
			purge:   r.Replace("DELETE FROM `{t}` WHERE expires_at <= UTC_TIMESTAMP(6)"),
		}, nil
	}
	return statements{}, fmt.Errorf("sql dedup store: unknown dialect %v", d)
}
