package sql_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	"go.uber.org/goleak"

	"github.com/millrace/millrace/middleware"
	sqlstore "github.com/millrace/millrace/middleware/dedupstore/sql"
	"github.com/millrace/millrace/middleware/dedupstore/storetest"
	"github.com/millrace/millrace/transports/transporttest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// backend is one database server the tests run against. Its DSN can be
// overridden by the environment variable named in env.
type backend struct {
	name    string
	dialect sqlstore.Dialect
	driver  string
	env     string
	dsn     string
	// unreachable is a DSN naming a port nothing listens on.
	unreachable string
}

var backends = []backend{
	{
		name: "Postgres", dialect: sqlstore.Postgres, driver: "pgx",
		env:         "MILLRACE_TEST_POSTGRES_DSN",
		dsn:         "postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
		unreachable: "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=2",
	},
	{
		name: "MySQL", dialect: sqlstore.MySQL, driver: "mysql",
		env:         "MILLRACE_TEST_MYSQL_DSN",
		dsn:         "root@tcp(127.0.0.1:3306)/test?parseTime=true",
		unreachable: "root@tcp(127.0.0.1:1)/test?timeout=2s",
	},
}

// forEachBackend runs f as a subtest per backend.
func forEachBackend(t *testing.T, f func(t *testing.T, b backend)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { f(t, b) })
	}
}

// open connects to b's server, skipping the test if it is not reachable.
// The pool is closed when t ends.
func (b backend) open(t *testing.T) *sql.DB {
	t.Helper()
	dsn := b.dsn
	if v := os.Getenv(b.env); v != "" {
		dsn = v
	}
	db, err := sql.Open(b.driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Skipf("%s not reachable (set %s): %v", b.name, b.env, err)
	}
	return db
}

// newStore returns a store on a fresh table of db, dropped when t ends.
func (b backend) newStore(t *testing.T, db *sql.DB) (*sqlstore.Store, string) {
	t.Helper()
	table := "dedup_test_" + randomHex(t)
	s, err := sqlstore.New(db, b.dialect, table)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSchema(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		q := `DROP TABLE IF EXISTS "` + table + `"`
		if b.dialect == sqlstore.MySQL {
			q = "DROP TABLE IF EXISTS `" + table + "`"
		}
		if _, err := db.ExecContext(context.Background(), q); err != nil {
			t.Errorf("drop %s: %v", table, err)
		}
	})
	return s, table
}

func randomHex(t *testing.T) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

func TestStore_Conformance(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		db := b.open(t)
		storetest.Run(t, func(t *testing.T) middleware.DedupStore {
			s, _ := b.newStore(t, db)
			return s
		})
	})
}

func TestStore_UnreachableServerIsUnavailable(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			db, err := sql.Open(b.driver, b.unreachable)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			s, err := sqlstore.New(db, b.dialect, "dedup")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			_, claimErr := s.Claim(ctx, "k", "o", time.Second)
			_, purgeErr := s.Purge(ctx)
			for name, err := range map[string]error{
				"Claim":        claimErr,
				"Complete":     s.Complete(ctx, "k", "o", time.Second),
				"Release":      s.Release(ctx, "k", "o"),
				"Purge":        purgeErr,
				"CreateSchema": s.CreateSchema(ctx),
			} {
				if !errors.Is(err, middleware.ErrStoreUnavailable) {
					t.Errorf("%s: got %v, want ErrStoreUnavailable", name, err)
				}
			}
		})
	}
}

func TestStore_PurgeDeletesOnlyExpiredRows(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		db := b.open(t)
		s, table := b.newStore(t, db)
		ctx := t.Context()
		const short = 100 * time.Millisecond
		mustClaim(t, s, "expired-claim", "a", short, middleware.Claimed)
		mustClaim(t, s, "live-claim", "a", time.Minute, middleware.Claimed)
		mustClaim(t, s, "expired-done", "a", time.Minute, middleware.Claimed)
		mustComplete(t, s, "expired-done", "a", short)
		mustClaim(t, s, "live-done", "a", time.Minute, middleware.Claimed)
		mustComplete(t, s, "live-done", "a", time.Hour)

		var purged int64
		for deadline := time.Now().Add(2 * time.Second); purged < 2; {
			n, err := s.Purge(ctx)
			if err != nil {
				t.Fatal(err)
			}
			purged += n
			if time.Now().After(deadline) {
				t.Fatalf("purged %d rows after 2s, want 2", purged)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if purged != 2 {
			t.Fatalf("purged %d rows, want 2", purged)
		}
		if n := countRows(t, db, b, table); n != 2 {
			t.Fatalf("%d rows left, want 2", n)
		}
		mustClaim(t, s, "live-claim", "b", time.Minute, middleware.Busy)
		mustClaim(t, s, "live-done", "b", time.Minute, middleware.AlreadyDone)
		mustClaim(t, s, "expired-claim", "b", time.Minute, middleware.Claimed)
		mustClaim(t, s, "expired-done", "b", time.Minute, middleware.Claimed)
		if n, err := s.Purge(ctx); err != nil || n != 0 {
			t.Fatalf("second purge: %d, %v; want 0, nil", n, err)
		}
	})
}

func countRows(t *testing.T, db *sql.DB, b backend, table string) int {
	t.Helper()
	q := `SELECT count(*) FROM "` + table + `"`
	if b.dialect == sqlstore.MySQL {
		q = "SELECT count(*) FROM `" + table + "`"
	}
	var n int
	if err := db.QueryRowContext(t.Context(), q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestStore_CompleteTxCommitsWithTheTransaction(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		db := b.open(t)
		s, _ := b.newStore(t, db)
		ctx := t.Context()

		// Rolled back: the claim stands as it was.
		mustClaim(t, s, "k", "a", time.Minute, middleware.Claimed)
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.CompleteTx(ctx, tx, "k", "a", time.Hour); err != nil {
			t.Fatal(err)
		}
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		mustClaim(t, s, "k", "b", time.Minute, middleware.Busy)

		// Committed: done, and a claim racing the commit waits for it.
		tx, err = db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.CompleteTx(ctx, tx, "k", "a", time.Hour); err != nil {
			t.Fatal(err)
		}
		raced := make(chan middleware.ClaimResult, 1)
		go func() {
			r, err := s.Claim(ctx, "k", "b", time.Minute)
			if err != nil {
				t.Error(err)
			}
			raced <- r
		}()
		time.Sleep(50 * time.Millisecond) // let the claim reach the row lock
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if r := <-raced; r != middleware.AlreadyDone {
			t.Fatalf("claim racing the commit: got %v, want AlreadyDone", r)
		}
	})
}

func TestStore_StaleOwnerGetsLeaseLost(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		db := b.open(t)
		s, _ := b.newStore(t, db)
		ctx := t.Context()
		mustClaim(t, s, "k", "a", 50*time.Millisecond, middleware.Claimed)
		waitClaimed(t, s, "k", "b")

		if err := s.Complete(ctx, "k", "a", time.Hour); !errors.Is(err, sqlstore.ErrLeaseLost) {
			t.Fatalf("Complete by stale owner: got %v, want ErrLeaseLost", err)
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = s.CompleteTx(ctx, tx, "k", "a", time.Hour)
		// Roll back at once: MySQL keeps the row locked until tx ends.
		_ = tx.Rollback()
		if !errors.Is(err, sqlstore.ErrLeaseLost) {
			t.Fatalf("CompleteTx by stale owner: got %v, want ErrLeaseLost", err)
		}
		if err := s.Release(ctx, "k", "a"); err != nil {
			t.Fatalf("Release by stale owner: %v", err)
		}
		mustClaim(t, s, "k", "c", time.Minute, middleware.Busy)
	})
}

func TestStore_ExpiredClaimCanStillBeCompletedByItsOwner(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		db := b.open(t)
		s, _ := b.newStore(t, db)
		mustClaim(t, s, "k", "a", time.Millisecond, middleware.Claimed)
		time.Sleep(20 * time.Millisecond)
		// Nobody took it over, so the late owner's work counts.
		mustComplete(t, s, "k", "a", time.Hour)
		mustClaim(t, s, "k", "b", time.Minute, middleware.AlreadyDone)
	})
}

func TestStore_RepeatedClaimBySameOwnerIsClaimed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		db := b.open(t)
		s, _ := b.newStore(t, db)
		mustClaim(t, s, "k", "a", time.Minute, middleware.Claimed)
		mustClaim(t, s, "k", "a", time.Minute, middleware.Claimed)
		mustClaim(t, s, "k", "b", time.Minute, middleware.Busy)
	})
}

func TestStore_KeysAreCaseAndSpaceSensitive(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		db := b.open(t)
		s, _ := b.newStore(t, db)
		for _, k := range []string{"key", "KEY", "key ", "kéy", strings.Repeat("x", sqlstore.MaxKeyLen)} {
			mustClaim(t, s, k, "a", time.Minute, middleware.Claimed)
		}
	})
}

// TestStore_ProcessesRaceForManyKeys has two connection pools, standing in
// for two processes, claim the same keys at once: every key has exactly
// one winner and no statement fails.
func TestStore_ProcessesRaceForManyKeys(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		db1, db2 := b.open(t), b.open(t)
		s1, table := b.newStore(t, db1)
		s2, err := sqlstore.New(db2, b.dialect, table)
		if err != nil {
			t.Fatal(err)
		}
		const keys, perPool = 20, 8
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			wins = map[string]int{}
		)
		for i, s := range []*sqlstore.Store{s1, s2} {
			for g := range perPool {
				wg.Go(func() {
					for k := range keys {
						key := "k" + strconv.Itoa(k)
						owner := strconv.Itoa(i) + "-" + strconv.Itoa(g)
						r, err := s.Claim(t.Context(), key, owner, time.Minute)
						if err != nil {
							t.Error(err)
							return
						}
						if r == middleware.Claimed {
							mu.Lock()
							wins[key]++
							mu.Unlock()
						}
					}
				})
			}
		}
		wg.Wait()
		for k := range keys {
			if n := wins["k"+strconv.Itoa(k)]; n != 1 {
				t.Errorf("key k%d: %d winners, want 1", k, n)
			}
		}
	})
}

func TestNew_RejectsBadTableNamesAndDialects(t *testing.T) {
	db, err := sql.Open("pgx", "postgres://127.0.0.1:1/none")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	tests := []struct {
		table   string
		dialect sqlstore.Dialect
		ok      bool
	}{
		{"dedup", sqlstore.Postgres, true},
		{"Dedup_Keys_2", sqlstore.MySQL, true},
		{"_dedup", sqlstore.MySQL, true},
		{"", sqlstore.Postgres, false},
		{"2dedup", sqlstore.Postgres, false},
		{"dedup;drop table x", sqlstore.Postgres, false},
		{`dedup"`, sqlstore.Postgres, false},
		{"dedup`", sqlstore.MySQL, false},
		{"public.dedup", sqlstore.Postgres, false},
		{"dédup", sqlstore.Postgres, false},
		{strings.Repeat("t", 49), sqlstore.Postgres, false},
		{"dedup", sqlstore.Dialect(0), false},
	}
	for _, tt := range tests {
		_, err := sqlstore.New(db, tt.dialect, tt.table)
		if (err == nil) != tt.ok {
			t.Errorf("New(%v, %q): err = %v, want ok=%v", tt.dialect, tt.table, err, tt.ok)
		}
	}
	if _, err := sqlstore.New(nil, sqlstore.Postgres, "dedup"); err == nil {
		t.Error("New(nil db): want error")
	}
}

func TestStore_RejectsBadArgumentsWithoutTouchingTheDatabase(t *testing.T) {
	// The server is unreachable: an argument error must come first.
	db, err := sql.Open("pgx", "postgres://127.0.0.1:1/none")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	s, err := sqlstore.New(db, sqlstore.Postgres, "dedup")
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	long := strings.Repeat("x", sqlstore.MaxKeyLen+1)
	tests := []struct {
		name       string
		key, owner string
		d          time.Duration
	}{
		{"empty key", "", "o", time.Second},
		{"empty owner", "k", "", time.Second},
		{"long key", long, "o", time.Second},
		{"long owner", "k", long, time.Second},
		{"NUL in key", "k\x00", "o", time.Second},
		{"invalid UTF-8 owner", "k", "\xff", time.Second},
		{"zero duration", "k", "o", 0},
		{"negative duration", "k", "o", -time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, claimErr := s.Claim(ctx, tt.key, tt.owner, tt.d)
			errs := []error{claimErr, s.Complete(ctx, tt.key, tt.owner, tt.d)}
			if tt.d > 0 {
				errs = append(errs, s.Release(ctx, tt.key, tt.owner))
			}
			for i, err := range errs {
				if err == nil || errors.Is(err, middleware.ErrStoreUnavailable) {
					t.Errorf("call %d: got %v, want an argument error", i, err)
				}
			}
		})
	}
}

func mustClaim(t *testing.T, s *sqlstore.Store, key, owner string, lease time.Duration, want middleware.ClaimResult) {
	t.Helper()
	got, err := s.Claim(t.Context(), key, owner, lease)
	if err != nil {
		t.Fatalf("claim %q by %q: %v", key, owner, err)
	}
	if got != want {
		t.Fatalf("claim %q by %q: got %v, want %v", key, owner, got, want)
	}
}

func mustComplete(t *testing.T, s *sqlstore.Store, key, owner string, ttl time.Duration) {
	t.Helper()
	if err := s.Complete(t.Context(), key, owner, ttl); err != nil {
		t.Fatalf("complete %q by %q: %v", key, owner, err)
	}
}

// waitClaimed polls until owner claims key, whose lease is about to run out.
func waitClaimed(t *testing.T, s *sqlstore.Store, key, owner string) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); ; {
		r, err := s.Claim(t.Context(), key, owner, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if r == middleware.Claimed {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("claim %q by %q still %v after 2s", key, owner, r)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStore_CallsOnAServerThatNeverAnswersAreBounded(t *testing.T) {
	addr := transporttest.SilentServer(t)
	dsns := map[string]string{
		"Postgres": "postgres://postgres@" + addr + "/test?sslmode=disable",
		"MySQL":    "root@tcp(" + addr + ")/test",
	}
	forEachBackend(t, func(t *testing.T, b backend) {
		db, err := sql.Open(b.driver, dsns[b.name])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		s, err := sqlstore.New(db, b.dialect, "dedup", sqlstore.CallTimeout(200*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err = s.Claim(context.Background(), "k", "o", time.Second)
		if !errors.Is(err, middleware.ErrStoreUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Claim = %v, want ErrStoreUnavailable and the deadline", err)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("Claim gave up after %v, want about the 200ms call timeout", took)
		}
	})
}
