package sql

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// Dialect selects the SQL a [Store] speaks.
type Dialect int

const (
	// Postgres is PostgreSQL 13 or later (xid8, pg_current_xact_id), used
	// through github.com/jackc/pgx/v5/stdlib.
	Postgres Dialect = iota + 1
	// MySQL is MySQL 8 or MariaDB 10.6+ with InnoDB, used through
	// github.com/go-sql-driver/mysql (add interpolateParams=true to the
	// DSN: without it every statement with arguments costs three round
	// trips).
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

// maxPrefixLen keeps every table and index name within PostgreSQL's 63
// byte identifier limit.
const maxPrefixLen = 40

// validPrefix reports whether prefix is empty or a plain identifier start:
// a letter or underscore, then letters, digits or underscores. Only such
// prefixes are spliced into SQL, so a prefix cannot inject anything.
func validPrefix(prefix string) bool {
	if len(prefix) > maxPrefixLen {
		return false
	}
	for i, c := range []byte(prefix) {
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// Expected-version modes: each has its own append statement.
const (
	modeAny = iota
	modeNoStream
	modeExact
	modes
)

// queries holds a dialect's SQL for one table prefix.
type queries struct {
	// schema creates the tables, each statement on its own.
	schema []string

	// Postgres: append[mode] is the whole append, one statement. Its
	// arguments: stream $1, event count $2, then arrays of event ids $3,
	// types $4, content types $5, payloads $6, metadata $7, and for
	// modeExact the expected version $8. It returns (tx, seq, stream,
	// version, recorded_at) per event, none if the expected version was
	// not the stream's.
	append [modes]string
	// appendMany is several appends to distinct streams in one statement
	// (see manyArgs); it returns what append does, for the appends whose
	// expected version was the stream's.
	appendMany string

	// MySQL: an append is lockSequence, the stream statement of its mode
	// (stream[mode]), insertEvents (with insertRow repeated per event,
	// joined by commas) and setSequence, in one transaction.
	lockSequence string
	stream       [modes]string
	insertEvents string
	insertRow    string
	setSequence  string
	// shareSequence reads the sequence's value once every transaction
	// that holds it has ended (MySQL ReadAll's settle path); shareStream
	// does so for one stream's version (ReadStream's).
	shareSequence string
	shareStream   string
	// readAllUpTo is readAll bounded above by a sequence value.
	readAllUpTo string

	// version returns a stream's current version.
	version string
	// readStream returns (tx, seq, stream, version, id, type, content
	// type, payload, metadata, recorded at) of stream $1 from version $2
	// to version $3, at most $4 rows, in version order.
	readStream string
	// readAll returns the same columns after position ($1, $2) (Postgres)
	// or seq $1 (MySQL), at most $n rows, in global order.
	readAll string

	// saveSnapshot stores a snapshot unless a later one of its state
	// version is there; loadSnapshot reads one.
	saveSnapshot string
	loadSnapshot string
}

// lockKey returns a PostgreSQL advisory lock key (or hash seed) for name:
// CreateSchema locks lockKey("millrace eventstore "+prefix), appends hash
// stream ids with the seed lockKey("millrace eventstore streams "+prefix),
// so that stores of different prefixes never wait for each other.
func lockKey(name string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(name))
	return int64(h.Sum64())
}

// mysqlTime formats a DATETIME(6) column or value as text, read back in
// Go as UTC whatever the connection's time zone and parseTime settings.
const mysqlTime = "'%Y-%m-%d %H:%i:%s.%f'"

func newQueries(d Dialect, prefix string) (queries, error) {
	switch d {
	case Postgres:
		return postgresQueries(prefix), nil
	case MySQL:
		return mysqlQueries(prefix), nil
	}
	return queries{}, fmt.Errorf("eventstore sql: unknown dialect %v", d)
}

func postgresQueries(prefix string) queries {
	r := strings.NewReplacer("{events}", `"`+prefix+`events"`, "{streams}", `"`+prefix+`streams"`,
		"{snapshots}", `"`+prefix+`snapshots"`, "{p}", prefix,
		"{seed}", strconv.FormatInt(lockKey("millrace eventstore streams "+prefix), 10))
	// A row's tx is at least its appending transaction's id, so a reader
	// that stays below the oldest running transaction (pg_snapshot_xmin)
	// never passes a row that may still commit: a running transaction
	// only writes rows at or above its own id. Taking the greatest with
	// the stream's last tx (read on the locked, latest version of the
	// stream's row) keeps each stream's events in version order, although
	// a transaction that waited for the stream's lock may have an older id
	// than the one it waited for. A transaction that begins after another
	// committed gets a greater id than any tx that one wrote, so its events
	// come after the other's.
	const insert = `
INSERT INTO {events} (tx, stream_id, version, event_id, type, content_type, payload, metadata, recorded_at)
SELECT s.tx, $1, s.version - $2 + e.ord, e.id, e.type, e.content_type, e.payload, e.metadata::jsonb, s.at
FROM s, unnest($3::text[], $4::text[], $5::text[], $6::bytea[], $7::text[])
	WITH ORDINALITY AS e(id, type, content_type, payload, metadata, ord)
ORDER BY e.ord
RETURNING tx, seq, stream_id, version, recorded_at`
	const columns = `tx, seq, stream_id, version, event_id, type, content_type, payload, metadata, recorded_at`
	var q queries
	q.schema = []string{
		r.Replace(`CREATE TABLE IF NOT EXISTS {events} (
	tx           xid8        NOT NULL,
	seq          bigint      GENERATED ALWAYS AS IDENTITY,
	stream_id    text        COLLATE "C" NOT NULL,
	version      bigint      NOT NULL,
	event_id     text        NOT NULL,
	type         text        NOT NULL,
	content_type text        NOT NULL,
	payload      bytea       NOT NULL,
	metadata     jsonb       NOT NULL,
	recorded_at  timestamptz NOT NULL,
	CONSTRAINT "{p}events_pkey" PRIMARY KEY (tx, seq),
	CONSTRAINT "{p}events_stream_version" UNIQUE (stream_id, version)
)`),
		r.Replace(`CREATE TABLE IF NOT EXISTS {streams} (
	stream_id text   COLLATE "C" NOT NULL,
	version   bigint NOT NULL,
	tx        xid8   NOT NULL,
	CONSTRAINT "{p}streams_pkey" PRIMARY KEY (stream_id)
)`),
		r.Replace(`CREATE TABLE IF NOT EXISTS {snapshots} (
	stream_id     text        COLLATE "C" NOT NULL,
	state_version integer     NOT NULL,
	version       bigint      NOT NULL,
	type          text        NOT NULL,
	content_type  text        NOT NULL,
	payload       bytea       NOT NULL,
	taken_at      timestamptz NOT NULL,
	CONSTRAINT "{p}snapshots_pkey" PRIMARY KEY (stream_id, state_version)
)`),
		// Each statement that inserts events notifies the channel
		// "<prefix>events" (sent when its transaction commits; one per
		// transaction, as PostgreSQL folds equal notifications), so that
		// followers (projections) wake within milliseconds of a commit
		// instead of a poll interval.
		r.Replace(`CREATE OR REPLACE FUNCTION "{p}notify"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('{p}events', '');
	RETURN NULL;
END $$`),
		r.Replace(`DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = '{p}events_notify' AND tgrelid = '{events}'::regclass) THEN
		CREATE TRIGGER "{p}events_notify" AFTER INSERT ON {events}
		FOR EACH STATEMENT EXECUTE FUNCTION "{p}notify"();
	END IF;
END $$`),
	}
	// Every append first takes an advisory lock per stream, merged ones
	// in the order of the streams' ids (the appends come sorted so). The
	// lock stands for the stream's row, existing or about to be created,
	// so a transaction that appends to several streams in the order of
	// their ids never deadlocks with a merged append, which is such a
	// transaction too. (Row locks alone cannot be taken in order: a
	// stream created by a transaction still open has no row to lock.)
	q.append[modeAny] = r.Replace(`WITH locked AS (
	SELECT pg_advisory_xact_lock(hashtextextended($1, {seed}))
), s AS (
	INSERT INTO {streams} AS st (stream_id, version, tx) SELECT $1, $2, pg_current_xact_id() FROM locked
	ON CONFLICT (stream_id) DO UPDATE SET version = st.version + excluded.version, tx = greatest(st.tx, excluded.tx)
	RETURNING st.version, st.tx, clock_timestamp() AS at
)` + insert)
	q.append[modeNoStream] = r.Replace(`WITH locked AS (
	SELECT pg_advisory_xact_lock(hashtextextended($1, {seed}))
), s AS (
	INSERT INTO {streams} (stream_id, version, tx) SELECT $1, $2, pg_current_xact_id() FROM locked
	ON CONFLICT (stream_id) DO NOTHING
	RETURNING version, tx, clock_timestamp() AS at
)` + insert)
	q.append[modeExact] = r.Replace(`WITH locked AS (
	SELECT pg_advisory_xact_lock(hashtextextended($1, {seed}))
), s AS (
	UPDATE {streams} SET version = version + $2, tx = greatest(tx, pg_current_xact_id())
	FROM locked WHERE stream_id = $1 AND version = $8
	RETURNING version, tx, clock_timestamp() AS at
)` + insert)
	// The streams' rows of each expected-version mode are written by a
	// statement of their own; they are distinct rows, so the three do not
	// interfere. They all read c, which takes the locks first.
	q.appendMany = r.Replace(`WITH locked AS (
	SELECT count(pg_advisory_xact_lock(hashtextextended(stream_id, {seed}))) AS n
	FROM (SELECT stream_id FROM unnest($1::text[]) AS stream_id ORDER BY stream_id COLLATE "C") AS sorted
), c AS (
	SELECT c.*, (SELECT n FROM locked) AS locked
	FROM unnest($1::text[], $2::bigint[], $3::bigint[]) WITH ORDINALITY AS c(stream_id, expected, k, call)
), exact AS (
	UPDATE {streams} st SET version = st.version + c.k, tx = greatest(st.tx, pg_current_xact_id())
	FROM c WHERE c.expected > 0 AND st.stream_id = c.stream_id AND st.version = c.expected
	RETURNING c.call, st.version, st.tx
), created AS (
	INSERT INTO {streams} (stream_id, version, tx)
	SELECT stream_id, k, pg_current_xact_id() FROM c WHERE expected = 0
	ON CONFLICT (stream_id) DO NOTHING
	RETURNING stream_id, version, tx
), upserted AS (
	INSERT INTO {streams} AS st (stream_id, version, tx)
	SELECT stream_id, k, pg_current_xact_id() FROM c WHERE expected < 0
	ON CONFLICT (stream_id) DO UPDATE SET version = st.version + excluded.version, tx = greatest(st.tx, excluded.tx)
	RETURNING stream_id, version, tx
), s AS (
	SELECT call, version, tx FROM exact
	UNION ALL SELECT c.call, created.version, created.tx FROM created JOIN c ON c.stream_id = created.stream_id
	UNION ALL SELECT c.call, upserted.version, upserted.tx FROM upserted JOIN c ON c.stream_id = upserted.stream_id
)
INSERT INTO {events} (tx, stream_id, version, event_id, type, content_type, payload, metadata, recorded_at)
SELECT s.tx, c.stream_id, s.version - c.k + e.place, e.id, e.type, e.content_type, e.payload, e.metadata::jsonb, clock_timestamp()
FROM unnest($4::bigint[], $5::bigint[], $6::text[], $7::text[], $8::text[], $9::bytea[], $10::text[])
	WITH ORDINALITY AS e(call, place, id, type, content_type, payload, metadata, ord)
JOIN s ON s.call = e.call
JOIN c ON c.call = e.call
ORDER BY e.ord
RETURNING tx, seq, stream_id, version, recorded_at`)
	q.version = r.Replace(`SELECT version FROM {streams} WHERE stream_id = $1`)
	q.readStream = r.Replace(`SELECT ` + columns + ` FROM {events}
WHERE stream_id = $1 AND version >= $2 AND version <= $3
ORDER BY version LIMIT $4`)
	q.readAll = r.Replace(`SELECT ` + columns + ` FROM {events}
WHERE (tx, seq) > ($1, $2) AND tx < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY tx, seq LIMIT $3`)
	q.saveSnapshot = r.Replace(`INSERT INTO {snapshots} AS s (stream_id, state_version, version, type, content_type, payload, taken_at)
VALUES ($1, $2, $3, $4, $5, $6, clock_timestamp())
ON CONFLICT (stream_id, state_version) DO UPDATE
SET version = excluded.version, type = excluded.type, content_type = excluded.content_type,
	payload = excluded.payload, taken_at = excluded.taken_at
WHERE s.version <= excluded.version`)
	q.loadSnapshot = r.Replace(`SELECT version, type, content_type, payload, taken_at FROM {snapshots}
WHERE stream_id = $1 AND state_version = $2`)
	return q
}

func mysqlQueries(prefix string) queries {
	r := strings.NewReplacer("{events}", "`"+prefix+"events`", "{streams}", "`"+prefix+"streams`",
		"{snapshots}", "`"+prefix+"snapshots`", "{sequence}", "`"+prefix+"sequence`", "{p}", prefix,
		"{time}", mysqlTime)
	const text = "VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL"
	const columns = "0, seq, stream_id, version, event_id, type, content_type, payload, metadata, DATE_FORMAT(recorded_at, {time})"
	var q queries
	q.schema = []string{
		// Stream ids are VARBINARY: compared byte for byte, without the
		// trailing-space padding of MySQL's text collations.
		r.Replace("CREATE TABLE IF NOT EXISTS {events} (\n" +
			"\tseq          BIGINT NOT NULL,\n" +
			"\tstream_id    VARBINARY(255) NOT NULL,\n" +
			"\tversion      BIGINT NOT NULL,\n" +
			"\tevent_id     " + text + ",\n" +
			"\ttype         " + text + ",\n" +
			"\tcontent_type " + text + ",\n" +
			"\tpayload      LONGBLOB NOT NULL,\n" +
			"\tmetadata     JSON NOT NULL,\n" +
			"\trecorded_at  DATETIME(6) NOT NULL,\n" +
			"\tPRIMARY KEY (seq),\n" +
			"\tUNIQUE KEY `{p}events_stream_version` (stream_id, version)\n" +
			") ENGINE=InnoDB"),
		r.Replace("CREATE TABLE IF NOT EXISTS {streams} (\n" +
			"\tstream_id VARBINARY(255) NOT NULL PRIMARY KEY,\n" +
			"\tversion   BIGINT NOT NULL\n" +
			") ENGINE=InnoDB"),
		r.Replace("CREATE TABLE IF NOT EXISTS {sequence} (\n" +
			"\tid  TINYINT NOT NULL PRIMARY KEY,\n" +
			"\tseq BIGINT NOT NULL\n" +
			") ENGINE=InnoDB"),
		r.Replace("INSERT IGNORE INTO {sequence} (id, seq) VALUES (1, 0)"),
		r.Replace("CREATE TABLE IF NOT EXISTS {snapshots} (\n" +
			"\tstream_id     VARBINARY(255) NOT NULL,\n" +
			"\tstate_version INT NOT NULL,\n" +
			"\tversion       BIGINT NOT NULL,\n" +
			"\ttype          " + text + ",\n" +
			"\tcontent_type  " + text + ",\n" +
			"\tpayload       LONGBLOB NOT NULL,\n" +
			"\ttaken_at      DATETIME(6) NOT NULL,\n" +
			"\tPRIMARY KEY (stream_id, state_version)\n" +
			") ENGINE=InnoDB"),
	}
	// The sequence row's lock, taken first by every append and held until
	// it commits, orders appends: seq numbers are handed out in commit
	// order, and without gaps, as a rolled back append never wrote the
	// row. Taking it before any stream's lock means appends never
	// deadlock on each other.
	q.lockSequence = r.Replace("SELECT seq, DATE_FORMAT(UTC_TIMESTAMP(6), {time}) FROM {sequence} WHERE id = 1 FOR UPDATE")
	q.stream[modeAny] = r.Replace("INSERT INTO {streams} (stream_id, version) VALUES (?, ?) ON DUPLICATE KEY UPDATE version = LAST_INSERT_ID(version + ?)")
	q.stream[modeNoStream] = r.Replace("INSERT INTO {streams} (stream_id, version) VALUES (?, ?)")
	q.stream[modeExact] = r.Replace("UPDATE {streams} SET version = version + ? WHERE stream_id = ? AND version = ?")
	q.insertEvents = r.Replace("INSERT INTO {events} (seq, stream_id, version, event_id, type, content_type, payload, metadata, recorded_at) VALUES ")
	q.insertRow = "(?, ?, ?, ?, ?, ?, ?, ?, ?)"
	q.setSequence = r.Replace("UPDATE {sequence} SET seq = ? WHERE id = 1")
	q.shareSequence = r.Replace("SELECT seq FROM {sequence} WHERE id = 1 LOCK IN SHARE MODE")
	q.shareStream = r.Replace("SELECT version FROM {streams} WHERE stream_id = ? LOCK IN SHARE MODE")
	// A locking read: it sees the latest version even in a transaction
	// whose snapshot is older.
	q.version = r.Replace("SELECT version FROM {streams} WHERE stream_id = ? FOR UPDATE")
	q.readStream = r.Replace("SELECT " + columns + " FROM {events}\n" +
		"WHERE stream_id = ? AND version >= ? AND version <= ?\n" +
		"ORDER BY version LIMIT ?")
	q.readAll = r.Replace("SELECT " + columns + " FROM {events} WHERE seq > ? ORDER BY seq LIMIT ?")
	q.readAllUpTo = r.Replace("SELECT " + columns + " FROM {events} WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?")
	// Assignments run left to right on the updated row, so version goes
	// last and every IF() tests the stored version.
	q.saveSnapshot = r.Replace("INSERT INTO {snapshots} (stream_id, state_version, version, type, content_type, payload, taken_at)\n" +
		"VALUES (?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(6))\n" +
		"ON DUPLICATE KEY UPDATE\n" +
		"type = IF(version <= ?, ?, type),\n" +
		"content_type = IF(version <= ?, ?, content_type),\n" +
		"payload = IF(version <= ?, ?, payload),\n" +
		"taken_at = IF(version <= ?, UTC_TIMESTAMP(6), taken_at),\n" +
		"version = IF(version <= ?, ?, version)")
	q.loadSnapshot = r.Replace("SELECT version, type, content_type, payload, DATE_FORMAT(taken_at, {time}) FROM {snapshots}\n" +
		"WHERE stream_id = ? AND state_version = ?")
	return q
}
