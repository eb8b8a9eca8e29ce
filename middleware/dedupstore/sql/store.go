package sql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"

	"github.com/millrace/millrace/middleware"
)

// MaxKeyLen is the longest key or owner token a Store accepts, in bytes.
const MaxKeyLen = 255

// ErrLeaseLost is returned by Complete and CompleteTx when owner no longer
// holds key: its lease ran out and another owner took the key over, or
// Purge removed the expired claim. Nothing was changed. A handler whose
// writes share a transaction with CompleteTx should roll back on it: another
// delivery may be processing, or have processed, the same message.
var ErrLeaseLost = errors.New("sql dedup store: claim no longer held by owner")

var (
	errEmptyKey    = errors.New("sql dedup store: key is empty")
	errEmptyOwner  = errors.New("sql dedup store: owner is empty")
	errLongKey     = errors.New("sql dedup store: key longer than MaxKeyLen bytes")
	errLongOwner   = errors.New("sql dedup store: owner longer than MaxKeyLen bytes")
	errBadKey      = errors.New("sql dedup store: key is not valid UTF-8 or contains NUL")
	errBadOwner    = errors.New("sql dedup store: owner is not valid UTF-8 or contains NUL")
	errNonPositive = errors.New("sql dedup store: lease or ttl must be positive")
)

// maxClaimAttempts bounds Claim's retries. Claim retries only when the row
// it lost to vanished or expired between its two statements, or when the
// database chose it as a deadlock or serialization victim.
const maxClaimAttempts = 5

// Store is a middleware.DedupStore kept in one SQL table. Every method is
// a single statement (Claim: at most two per attempt) in autocommit mode,
// safe for concurrent use by any number of processes sharing the table.
//
// Semantics: a row is live while expires_at is in the future on the
// database's clock. A live in-flight row makes the key Busy for other
// owners; a live done row makes it AlreadyDone for everyone; an expired row
// is treated as absent and taken over by the next Claim.
type Store struct {
	db      *sql.DB
	dialect Dialect
	stmt    statements
	timeout time.Duration
}

// DefaultCallTimeout bounds every call of a [Store] unless [CallTimeout]
// says otherwise.
const DefaultCallTimeout = 10 * time.Second

// Option adjusts a [Store].
type Option func(*Store)

// CallTimeout bounds every call of the store (each of its statements, and
// the connection it may need first) to d, so that a database server that
// accepts connections but never answers fails the call with an error
// instead of holding it for ever; a caller's earlier deadline still wins.
// 0 leaves calls bounded by their context alone. Default
// [DefaultCallTimeout].
func CallTimeout(d time.Duration) Option {
	return func(s *Store) { s.timeout = d }
}

// bound returns ctx with the store's call timeout, unless ctx ends sooner.
func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.timeout <= 0 {
		return ctx, func() {}
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= s.timeout {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.timeout)
}

var _ middleware.DedupStore = (*Store)(nil)

// New returns a Store keeping its rows in table of db, spoken to in
// dialect. table must be a plain identifier (letters, digits, underscores,
// not starting with a digit, at most 48 bytes); it is quoted, so it is
// case-sensitive. New does not touch the database; call CreateSchema or
// create the table by migration.
func New(db *sql.DB, dialect Dialect, table string, opts ...Option) (*Store, error) {
	if db == nil {
		return nil, errors.New("sql dedup store: db is nil")
	}
	if !validTable(table) {
		return nil, fmt.Errorf("sql dedup store: invalid table name %q: want letters, digits and underscores, not starting with a digit, at most %d bytes", table, maxTableLen)
	}
	stmt, err := newStatements(dialect, table)
	if err != nil {
		return nil, err
	}
	st := &Store{db: db, dialect: dialect, stmt: stmt, timeout: DefaultCallTimeout}
	for _, opt := range opts {
		opt(st)
	}
	return st, nil
}

// CreateSchema creates the table and its expires_at index unless they
// exist. It does not alter an existing table. Run it once, not from many
// processes at the same moment: PostgreSQL's CREATE TABLE IF NOT EXISTS
// can fail when two sessions race.
func (s *Store) CreateSchema(ctx context.Context) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	for _, q := range s.stmt.schema {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return unavailable("create schema", err)
		}
	}
	return nil
}

// Claim implements middleware.DedupStore. Only an insert, or the takeover
// of an expired row, claims a key; both happen in one atomic statement, so
// of concurrent claimers exactly one wins. A repeated Claim by the owner
// that already holds the key returns Claimed without extending the lease.
// Database errors wrap middleware.ErrStoreUnavailable.
func (s *Store) Claim(ctx context.Context, key, owner string, lease time.Duration) (middleware.ClaimResult, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if err := validate(key, owner, lease); err != nil {
		return 0, err
	}
	us := micros(lease)
	for range maxClaimAttempts {
		took, err := s.tryClaim(ctx, key, owner, us)
		if err != nil {
			if retryable(err) {
				continue
			}
			return 0, unavailable("claim", err)
		}
		if took {
			return middleware.Claimed, nil
		}
		var done, mine, live bool
		err = s.db.QueryRowContext(ctx, s.stmt.lookup, s.lookupArgs(key, owner)...).Scan(&done, &mine, &live)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			// The row we lost to was released or purged since: try again.
			continue
		case err != nil:
			return 0, unavailable("claim", err)
		case !done && mine:
			// Taken by the claim statement (MySQL) or held since an earlier
			// Claim. It may have expired already if the lease is shorter
			// than a round trip; it was ours all the same.
			return middleware.Claimed, nil
		case !live:
			// The row we lost to expired since: try again.
			continue
		case done:
			return middleware.AlreadyDone, nil
		default:
			return middleware.Busy, nil
		}
	}
	// The key keeps changing hands under us: let the caller come back.
	return middleware.Busy, nil
}

// tryClaim runs the dialect's claim statement. For Postgres it reports
// whether the statement took the key; for MySQL it reports false and the
// lookup that follows tells the outcome.
func (s *Store) tryClaim(ctx context.Context, key, owner string, us int64) (bool, error) {
	if s.stmt.claimReturns {
		var one int
		err := s.db.QueryRowContext(ctx, s.stmt.claim, key, owner, us).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return false, nil
		}
		return err == nil, err
	}
	_, err := s.db.ExecContext(ctx, s.stmt.claim, key, owner, us, owner, us)
	return false, err
}

// Complete implements middleware.DedupStore: if owner holds key (even with
// its lease run out, as long as nobody took the key over), the key becomes
// done for ttl. Otherwise nothing changes and Complete returns
// ErrLeaseLost. Completing an already completed key again with the same
// owner renews its ttl.
func (s *Store) Complete(ctx context.Context, key, owner string, ttl time.Duration) error {
	return s.complete(ctx, s.db, key, owner, ttl)
}

// CompleteTx is Complete run inside tx, so a handler's writes and its
// dedup mark commit or roll back together. It holds the key's row lock
// until tx ends; concurrent claims of the key wait for it and then see
// AlreadyDone (commit) or the claim as it was (rollback). Roll tx back on
// any error, ErrLeaseLost included, and do so promptly: MySQL keeps the
// key's row locked until tx ends even when owner no longer holds it.
// tx must be on the Store's database.
func (s *Store) CompleteTx(ctx context.Context, tx *sql.Tx, key, owner string, ttl time.Duration) error {
	if tx == nil {
		return errors.New("sql dedup store: tx is nil")
	}
	return s.complete(ctx, tx, key, owner, ttl)
}

// execer is what Complete needs of *sql.DB and *sql.Tx.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func (s *Store) complete(ctx context.Context, e execer, key, owner string, ttl time.Duration) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if err := validate(key, owner, ttl); err != nil {
		return err
	}
	us := micros(ttl)
	var args []any
	if s.dialect == MySQL {
		args = []any{us, key, owner}
	} else {
		args = []any{key, owner, us}
	}
	res, err := e.ExecContext(ctx, s.stmt.complete, args...)
	if err != nil {
		return unavailable("complete", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return unavailable("complete", err)
	}
	if n == 0 {
		return ErrLeaseLost
	}
	return nil
}

// Release implements middleware.DedupStore: it deletes owner's in-flight
// claim on key, so a redelivery can claim it at once. If owner does not
// hold the key, or the key is done, nothing changes and Release returns
// nil.
func (s *Store) Release(ctx context.Context, key, owner string) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if err := validate(key, owner, 1); err != nil {
		return err
	}
	if _, err := s.db.ExecContext(ctx, s.stmt.release, key, owner); err != nil {
		return unavailable("release", err)
	}
	return nil
}

// Purge deletes every expired row, done or in flight, and returns how many
// it deleted. Expired rows already behave as absent, so Purge changes no
// Claim's outcome; it only keeps the table bounded. Run it periodically
// (for example once a minute, from one process or many); it is one DELETE
// using the expires_at index. An owner whose expired claim was purged gets
// ErrLeaseLost from Complete, as if the key had been taken over.
func (s *Store) Purge(ctx context.Context) (int64, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	res, err := s.db.ExecContext(ctx, s.stmt.purge)
	if err != nil {
		return 0, unavailable("purge", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, unavailable("purge", err)
	}
	return n, nil
}

func (s *Store) lookupArgs(key, owner string) []any {
	if s.dialect == MySQL {
		return []any{owner, key}
	}
	return []any{key, owner}
}

// validate checks what the table can hold; PostgreSQL text takes neither
// NUL nor invalid UTF-8, and both dialects cap keys at MaxKeyLen.
func validate(key, owner string, d time.Duration) error {
	switch {
	case key == "":
		return errEmptyKey
	case owner == "":
		return errEmptyOwner
	case len(key) > MaxKeyLen:
		return errLongKey
	case len(owner) > MaxKeyLen:
		return errLongOwner
	case !storable(key):
		return errBadKey
	case !storable(owner):
		return errBadOwner
	case d <= 0:
		return errNonPositive
	}
	return nil
}

func storable(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// micros rounds d up to whole microseconds, the databases' resolution, so
// a lease never ends early.
func micros(d time.Duration) int64 {
	return int64((d + time.Microsecond - 1) / time.Microsecond)
}

// unavailable wraps a database error so that both
// middleware.ErrStoreUnavailable and the original error match errors.Is.
func unavailable(op string, err error) error {
	return fmt.Errorf("sql dedup store: %s: %w: %w", op, middleware.ErrStoreUnavailable, err)
}

// retryable reports whether err made the database abort the statement as a
// deadlock or serialization victim, which running it again resolves.
func retryable(err error) bool {
	var my *mysql.MySQLError
	if errors.As(err, &my) {
		return my.Number == 1213 // ER_LOCK_DEADLOCK
	}
	var pg interface{ SQLState() string }
	if errors.As(err, &pg) {
		switch pg.SQLState() {
		case "40001", "40P01": // serialization_failure, deadlock_detected
			return true
		}
	}
	return false
}
