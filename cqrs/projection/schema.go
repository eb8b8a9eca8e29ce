package projection

import (
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"

	sqlstore "github.com/millrace/millrace/cqrs/eventstore/sql"
)

// Generation states in the checkpoint table.
const (
	stateCreating = "creating" // its tables are being created
	stateBuilding = "building" // a rebuild fills it
	stateLive     = "live"     // it serves readers; at most one per projection
	stateRetired  = "retired"  // replaced; its tables are dropped
)

// statements is the SQL of one dialect and table prefix.
type statements struct {
	dialect sqlstore.Dialect
	schema  []string

	head         string // live generation of a projection (MySQL: locking)
	insertHead   string
	setHead      string
	checkpoint   string // position and state of a generation (MySQL: locking)
	generations  string // every generation of a projection, with its state
	insertGen    string
	setState     string
	retire       string
	advance      string
	deleteGen    string
	prefix       string
	checkpoints  string
	heads        string
	createView   []string // per table, %s: view, %s: generation table
	dropView     string
	dropTable    string
	lockAdmin    string
	unlockAdmin  string
	lockXact     string // PostgreSQL: transaction advisory lock
	quoteOpen    string
	quoteClose   string
	placeholders bool // $n instead of ?
}

func newStatements(d sqlstore.Dialect, prefix string) statements {
	s := statements{dialect: d, prefix: prefix}
	if d == sqlstore.MySQL {
		s.quoteOpen, s.quoteClose = "`", "`"
	} else {
		s.quoteOpen, s.quoteClose, s.placeholders = `"`, `"`, true
	}
	cp, heads := s.quote(prefix+"projections"), s.quote(prefix+"projection_heads")
	s.checkpoints, s.heads = cp, heads
	if d == sqlstore.MySQL {
		s.schema = []string{
			"CREATE TABLE IF NOT EXISTS " + cp + ` (
	projection VARCHAR(64) NOT NULL,
	generation INT NOT NULL,
	state      VARCHAR(16) NOT NULL,
	pos_tx     BIGINT NOT NULL DEFAULT 0,
	pos_seq    BIGINT NOT NULL DEFAULT 0,
	applied    BIGINT NOT NULL DEFAULT 0,
	updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	PRIMARY KEY (projection, generation)
) ENGINE=InnoDB`,
			"CREATE TABLE IF NOT EXISTS " + heads + ` (
	projection VARCHAR(64) NOT NULL PRIMARY KEY,
	generation INT NOT NULL
) ENGINE=InnoDB`,
		}
		s.head = "SELECT generation FROM " + heads + " WHERE projection = ? FOR UPDATE"
		s.checkpoint = "SELECT state, pos_tx, pos_seq FROM " + cp + " WHERE projection = ? AND generation = ? FOR UPDATE"
		s.insertHead = "INSERT IGNORE INTO " + heads + " (projection, generation) VALUES (?, ?)"
		s.insertGen = "INSERT IGNORE INTO " + cp + " (projection, generation, state) VALUES (?, ?, ?)"
		s.advance = "UPDATE " + cp + " SET pos_tx = ?, pos_seq = ?, applied = applied + ?, updated_at = UTC_TIMESTAMP(6) WHERE projection = ? AND generation = ?"
		s.lockAdmin = "SELECT GET_LOCK(?, ?)"
		s.unlockAdmin = "SELECT RELEASE_LOCK(?)"
		s.createView = []string{"CREATE OR REPLACE VIEW %s AS SELECT * FROM %s"}
	} else {
		s.schema = []string{
			"CREATE TABLE IF NOT EXISTS " + cp + ` (
	projection text NOT NULL,
	generation integer NOT NULL,
	state      text NOT NULL,
	pos_tx     bigint NOT NULL DEFAULT 0,
	pos_seq    bigint NOT NULL DEFAULT 0,
	applied    bigint NOT NULL DEFAULT 0,
	updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	PRIMARY KEY (projection, generation)
)`,
			"CREATE TABLE IF NOT EXISTS " + heads + ` (
	projection text NOT NULL PRIMARY KEY,
	generation integer NOT NULL
)`,
		}
		// Locked by an advisory lock first: plain reads, so that a batch
		// gets no transaction id (which holds back every reader of the
		// event store on the server) before it writes.
		s.head = "SELECT generation FROM " + heads + " WHERE projection = $1"
		s.checkpoint = "SELECT state, pos_tx, pos_seq FROM " + cp + " WHERE projection = $1 AND generation = $2"
		s.insertHead = "INSERT INTO " + heads + " (projection, generation) VALUES ($1, $2) ON CONFLICT DO NOTHING"
		s.insertGen = "INSERT INTO " + cp + " (projection, generation, state) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
		s.advance = "UPDATE " + cp + " SET pos_tx = $1, pos_seq = $2, applied = applied + $3, updated_at = clock_timestamp() WHERE projection = $4 AND generation = $5"
		s.lockAdmin = "SELECT pg_advisory_lock($1)"
		s.unlockAdmin = "SELECT pg_advisory_unlock($1)"
		s.lockXact = "SELECT pg_advisory_xact_lock($1)"
		// CREATE OR REPLACE VIEW wants the columns of the view it replaces,
		// which a new generation may have changed; DDL is transactional.
		s.createView = []string{"DROP VIEW IF EXISTS %[1]s", "CREATE VIEW %[1]s AS SELECT * FROM %[2]s"}
	}
	s.setHead = s.bind("UPDATE " + heads + " SET generation = ? WHERE projection = ?")
	s.generations = s.bind("SELECT generation, state, pos_tx, pos_seq, applied FROM " + cp + " WHERE projection = ? ORDER BY generation")
	s.setState = s.bind("UPDATE " + cp + " SET state = ?, updated_at = " + s.now() + " WHERE projection = ? AND generation = ?")
	s.retire = s.bind("UPDATE " + cp + " SET state = '" + stateRetired + "', updated_at = " + s.now() + " WHERE projection = ? AND state = '" + stateLive + "'")
	s.deleteGen = s.bind("DELETE FROM " + cp + " WHERE projection = ? AND generation = ?")
	s.dropView = "DROP VIEW IF EXISTS %s"
	s.dropTable = "DROP TABLE IF EXISTS %s"
	return s
}

func (s statements) now() string {
	if s.dialect == sqlstore.MySQL {
		return "UTC_TIMESTAMP(6)"
	}
	return "clock_timestamp()"
}

// bind turns ? placeholders into PostgreSQL's $n.
func (s statements) bind(q string) string {
	if !s.placeholders {
		return q
	}
	var b strings.Builder
	n := 0
	for _, c := range q {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

func (s statements) quote(name string) string { return s.quoteOpen + name + s.quoteClose }

// views returns the statements that point the views of tables at
// generation g's tables.
func (s statements) views(tables []string, g Generation) []string {
	var out []string
	for _, t := range tables {
		for _, f := range s.createView {
			out = append(out, fmt.Sprintf(f, s.quote(t), s.quote(g.Table(t))))
		}
	}
	return out
}

// lockKey is a PostgreSQL advisory lock key for name.
func lockKey(name string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(name))
	return int64(h.Sum64())
}

// execAll runs qs on q in turn.
func execAll(ctx context.Context, q interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, qs []string) error {
	for _, stmt := range qs {
		if _, err := q.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %w", firstLine(stmt), err)
		}
	}
	return nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}
