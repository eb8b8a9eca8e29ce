// Package sql keeps saga instances in PostgreSQL or MySQL: each
// transition's state and the messages it sends commit in one transaction,
// through the transactional outbox (package cqrs/outbox), so a crash
// between them neither loses a command nor sends one twice.
//
//	ob, err := outbox.New(ctx, bus, db, outbox.DefaultConfig(outbox.Postgres))
//	store, err := sagasql.New(ctx, db, sagasql.DefaultConfig(outbox.Postgres), ob)
//	m, err := saga.Register(bus, def, store)
//
// An instance is one row of "<prefix>saga" (saga, id, status, version, the
// instance as JSON, created and updated times), keyed by saga and id; a
// save updates the row only at the version it read. Concurrent saves are
// committed together, a batch per transaction (on PostgreSQL in two
// statements whatever the batch's size), each with its own outcome. Give
// the *sql.DB as many idle connections as it has open ones
// (db.SetMaxIdleConns): database/sql keeps two by default, and a busy
// saga then opens a connection per transaction.
package sql

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/millrace/millrace/cqrs/outbox"
	"github.com/millrace/millrace/saga"
)

// Config configures a [Store]. Start from [DefaultConfig].
type Config struct {
	// Dialect is the database's: outbox.Postgres or outbox.MySQL; it must
	// be the outbox's.
	Dialect outbox.Dialect
	// TablePrefix prefixes the table, "<prefix>saga"; default "millrace_".
	TablePrefix string
	// CallTimeout bounds every statement; default 10s.
	CallTimeout time.Duration
}

// DefaultConfig returns the defaults for dialect d.
func DefaultConfig(d outbox.Dialect) Config {
	return Config{Dialect: d, TablePrefix: "millrace_", CallTimeout: 10 * time.Second}
}

var validPrefix = regexp.MustCompile(`^[A-Za-z0-9_]{0,40}$`)

// Validate reports every bad field, naming it.
func (c Config) Validate() error {
	var errs []error
	if c.Dialect != outbox.Postgres && c.Dialect != outbox.MySQL {
		errs = append(errs, fmt.Errorf("saga/sql: Dialect %v: must be outbox.Postgres or outbox.MySQL", c.Dialect))
	}
	if !validPrefix.MatchString(c.TablePrefix) {
		errs = append(errs, fmt.Errorf("saga/sql: TablePrefix %q: letters, digits and underscores, at most 40", c.TablePrefix))
	}
	if c.CallTimeout <= 0 {
		errs = append(errs, fmt.Errorf("saga/sql: CallTimeout %s: must be greater than 0", c.CallTimeout))
	}
	return errors.Join(errs...)
}

// Store is a [saga.Store] in PostgreSQL or MySQL. It is safe for
// concurrent use by any number of processes.
type Store struct {
	db  *sql.DB
	ob  *outbox.Outbox
	cfg Config
	q   queries

	commits committer
}

var _ saga.Store = (*Store)(nil)

// New returns the store in db, configured by cfg, and creates its table if
// it does not exist. ob is the outbox, in the same database, that the
// messages of each transition are written to; with ob nil the store only
// reads (for tools such as cmd/saga), Save fails, and New creates nothing
// (it needs no DDL rights): a missing table is an error naming it.
func New(ctx context.Context, db *sql.DB, cfg Config, ob *outbox.Outbox) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if db == nil {
		return nil, errors.New("saga/sql: nil *sql.DB")
	}
	s := &Store{db: db, ob: ob, cfg: cfg, q: newQueries(cfg.Dialect, cfg.TablePrefix+"saga")}
	ctx, cancel := context.WithTimeout(ctx, cfg.CallTimeout)
	defer cancel()
	if ob == nil {
		rows, err := db.QueryContext(ctx, s.q.exists, "", "")
		if err != nil {
			return nil, s.failed(ctx, "read table "+cfg.TablePrefix+"saga (is Config.TablePrefix right?)", err)
		}
		_ = rows.Close()
		return s, nil
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, s.failed(ctx, "create table", err)
	}
	defer func() { _ = tx.Rollback() }()
	if cfg.Dialect == outbox.Postgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext('millrace saga schema'))`); err != nil {
			return nil, s.failed(ctx, "create table", err)
		}
	}
	for _, q := range s.q.schema {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return nil, s.failed(ctx, "create table", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, s.failed(ctx, "create table", err)
	}
	return s, nil
}

// failed wraps err of what, naming the timeout when ctx ran out.
func (s *Store) failed(ctx context.Context, what string, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("saga/sql: %s: no answer within %s (Config.CallTimeout): %w", what, s.cfg.CallTimeout, err)
	}
	return fmt.Errorf("saga/sql: %s: %w", what, err)
}

// Load returns the instance, or saga.ErrNotFound.
func (s *Store) Load(ctx context.Context, name, id string) (*saga.Instance, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	var data []byte
	var version int64
	err := s.db.QueryRowContext(ctx, s.q.load, name, id).Scan(&data, &version)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, saga.ErrNotFound
	}
	if err != nil {
		return nil, s.failed(ctx, "load "+name+" "+id, err)
	}
	return decode(data, version)
}

func decode(data []byte, version int64) (*saga.Instance, error) {
	var in saga.Instance
	if err := json.Unmarshal(data, &in); err != nil {
		return nil, fmt.Errorf("saga/sql: decode instance: %w", err)
	}
	in.Version = version
	return &in, nil
}

// Save stores in at expected+1 (created when expected is 0) and writes out
// to the outbox, in one transaction; publish is not called. Concurrent
// saves are committed together, in one transaction per batch (see
// committer), each with its own version check and outcome.
func (s *Store) Save(ctx context.Context, in *saga.Instance, expected int64, out []saga.Outgoing, _ saga.Publish) error {
	if s.ob == nil {
		return errors.New("saga/sql: this store was opened without an outbox and only reads")
	}
	data, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("saga/sql: encode instance %s: %w", in.ID, err)
	}
	return s.commits.save(ctx, s, &saveReq{in: in, data: data, expected: expected, out: out})
}

// List returns the saga's instances in status ("" for all), oldest first,
// at most limit (0: all).
func (s *Store) List(ctx context.Context, name string, status saga.Status, limit int) ([]*saga.Instance, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	q, args := s.q.listAll, []any{name}
	if status != "" {
		q, args = s.q.listStatus, append(args, string(status))
	}
	if limit > 0 {
		q += " LIMIT " + strconv.Itoa(limit)
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, s.failed(ctx, "list "+name, err)
	}
	defer rows.Close()
	var out []*saga.Instance
	for rows.Next() {
		var data []byte
		var version int64
		if err := rows.Scan(&data, &version); err != nil {
			return nil, s.failed(ctx, "list "+name, err)
		}
		in, err := decode(data, version)
		if err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	if err := rows.Err(); err != nil {
		return nil, s.failed(ctx, "list "+name, err)
	}
	return out, nil
}

// Sagas returns the names of the sagas that have instances in the store.
func (s *Store) Sagas(ctx context.Context) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	rows, err := s.db.QueryContext(ctx, s.q.sagas)
	if err != nil {
		return nil, s.failed(ctx, "list sagas", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, s.failed(ctx, "list sagas", err)
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// queries are the statements of a dialect.
type queries struct {
	schema                                                   []string
	load, insert, update, exists, listAll, listStatus, sagas string

	insertMany, updateManyHead, updateManyTail string // PostgreSQL's group commit
}

func newQueries(d outbox.Dialect, table string) queries {
	if d == outbox.MySQL {
		t := "`" + table + "`"
		return queries{
			schema: []string{`CREATE TABLE IF NOT EXISTS ` + t + ` (
				saga VARCHAR(100) NOT NULL,
				id VARCHAR(200) NOT NULL,
				status VARCHAR(20) NOT NULL,
				version BIGINT NOT NULL,
				data LONGBLOB NOT NULL,
				created_at DATETIME(6) NOT NULL,
				updated_at DATETIME(6) NOT NULL,
				PRIMARY KEY (saga, id),
				INDEX ` + table + `_status (saga, status, created_at)
			)`},
			load:       `SELECT data, version FROM ` + t + ` WHERE saga = ? AND id = ?`,
			insert:     `INSERT INTO ` + t + ` (saga, id, status, version, data, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			update:     `UPDATE ` + t + ` SET status = ?, version = ?, data = ?, updated_at = ? WHERE saga = ? AND id = ? AND version = ?`,
			exists:     `SELECT 1 FROM ` + t + ` WHERE saga = ? AND id = ?`,
			listAll:    `SELECT data, version FROM ` + t + ` WHERE saga = ? ORDER BY created_at, id`,
			listStatus: `SELECT data, version FROM ` + t + ` WHERE saga = ? AND status = ? ORDER BY created_at, id`,
			sagas:      `SELECT DISTINCT saga FROM ` + t + ` ORDER BY saga`,
		}
	}
	t := `"` + table + `"`
	return queries{
		schema: []string{`CREATE TABLE IF NOT EXISTS ` + t + ` (
				saga VARCHAR(100) NOT NULL,
				id VARCHAR(200) NOT NULL,
				status VARCHAR(20) NOT NULL,
				version BIGINT NOT NULL,
				data BYTEA NOT NULL,
				created_at TIMESTAMPTZ NOT NULL,
				updated_at TIMESTAMPTZ NOT NULL,
				PRIMARY KEY (saga, id)
			)`,
			`CREATE INDEX IF NOT EXISTS "` + table + `_status" ON ` + t + ` (saga, status, created_at)`},
		load:       `SELECT data, version FROM ` + t + ` WHERE saga = $1 AND id = $2`,
		insert:     `INSERT INTO ` + t + ` (saga, id, status, version, data, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (saga, id) DO NOTHING`,
		update:     `UPDATE ` + t + ` SET status = $1, version = $2, data = $3, updated_at = $4 WHERE saga = $5 AND id = $6 AND version = $7`,
		exists:     `SELECT 1 FROM ` + t + ` WHERE saga = $1 AND id = $2`,
		listAll:    `SELECT data, version FROM ` + t + ` WHERE saga = $1 ORDER BY created_at, id`,
		listStatus: `SELECT data, version FROM ` + t + ` WHERE saga = $1 AND status = $2 ORDER BY created_at, id`,
		sagas:      `SELECT DISTINCT saga FROM ` + t + ` ORDER BY saga`,
		insertMany: `INSERT INTO ` + t + ` (saga, id, status, version, data, created_at, updated_at) VALUES `,
		updateManyHead: `UPDATE ` + t + ` AS s SET status = v.status, version = v.version, data = v.data, updated_at = v.updated_at
			FROM (VALUES `,
		updateManyTail: `) AS v(saga, id, status, version, data, updated_at, expected)
			WHERE s.saga = v.saga AND s.id = v.id AND s.version = v.expected RETURNING s.saga, s.id`,
	}
}
