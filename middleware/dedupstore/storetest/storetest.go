// Package storetest is the conformance suite for middleware.DedupStore
// implementations. Every store millrace ships (memory, Redis, SQL) runs it,
// and a store written outside millrace should too:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) middleware.DedupStore {
//			return mystore.New(connect(t))
//		})
//	}
//
// Stores keep time on their own clock (a database's or Redis's), so the
// lease and TTL cases wait in real time, with leases of about 100ms; the
// whole suite takes well under three seconds.
package storetest

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/millrace/millrace/middleware"
)

const (
	// shortLease is long enough for a round trip to a local server and short
	// enough to wait for.
	shortLease = 100 * time.Millisecond
	// longLease and longTTL outlast any case of the suite.
	longLease = time.Minute
	longTTL   = time.Hour
	// expiryDeadline bounds the wait for a lease or TTL to run out.
	expiryDeadline = 2 * time.Second
	// pollEvery is how often an expiry is polled for.
	pollEvery = 10 * time.Millisecond
	// clockSlack allows for a store clock of millisecond resolution.
	clockSlack = 2 * time.Millisecond
)

// Run runs the conformance suite against stores made by newStore, one per
// case. newStore should register any cleanup with t.Cleanup. Keys are
// random per case, so stores sharing one server (or one table) across cases
// and test runs do not interfere.
//
// What the suite requires of a store:
//   - A completed key is AlreadyDone for every later owner until its ttl ends;
//     then it can be claimed again.
//   - A released key can be claimed again at once.
//   - Of concurrent claims of one free key, exactly one is Claimed; the
//     others are Busy.
//   - A key claimed by one owner is Busy for others while the lease lasts,
//     and claimable by another owner once it has run out.
//   - Complete and Release by an owner that no longer holds the key (its
//     lease ran out and another owner took over) change nothing. They may
//     return nil or an error; the suite checks only the state. Whether
//     Complete by an owner whose lease ran out while nobody took over marks
//     the key done is the store's choice (millrace's stores do: the handler
//     succeeded).
//   - Release of a done key changes nothing.
//   - Keys are independent of one another.
func Run(t *testing.T, newStore func(t *testing.T) middleware.DedupStore) {
	t.Helper()
	cases := []struct {
		name string
		run  func(t *testing.T, s middleware.DedupStore)
	}{
		{"ClaimThenCompleteIsAlreadyDone", testClaimThenCompleteIsAlreadyDone},
		{"ClaimThenReleaseIsClaimableAgain", testClaimThenReleaseIsClaimableAgain},
		{"ConcurrentClaimsExactlyOneWins", testConcurrentClaimsExactlyOneWins},
		{"BusyWhileLeaseValid", testBusyWhileLeaseValid},
		{"ExpiredLeaseCanBeTakenOver", testExpiredLeaseCanBeTakenOver},
		{"StaleOwnerCannotCompleteOrRelease", testStaleOwnerCannotCompleteOrRelease},
		{"DoneKeyExpiresAfterTTL", testDoneKeyExpiresAfterTTL},
		{"DistinctKeysAreIndependent", testDistinctKeysAreIndependent},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.run(t, newStore(t))
		})
	}
}

func testClaimThenCompleteIsAlreadyDone(t *testing.T, s middleware.DedupStore) {
	key := newKey(t)
	mustClaim(t, s, key, "owner-a", longLease, middleware.Claimed)
	mustComplete(t, s, key, "owner-a", longTTL)
	mustClaim(t, s, key, "owner-b", longLease, middleware.AlreadyDone)
	// Done stays done, also for the owner that completed it, and a Release
	// (of a claim that is no more) does not forget it.
	mustClaim(t, s, key, "owner-a", longLease, middleware.AlreadyDone)
	mustRelease(t, s, key, "owner-a")
	mustClaim(t, s, key, "owner-b", longLease, middleware.AlreadyDone)
}

func testClaimThenReleaseIsClaimableAgain(t *testing.T, s middleware.DedupStore) {
	key := newKey(t)
	mustClaim(t, s, key, "owner-a", longLease, middleware.Claimed)
	mustRelease(t, s, key, "owner-a")
	mustClaim(t, s, key, "owner-b", longLease, middleware.Claimed)
	mustComplete(t, s, key, "owner-b", longTTL)
	mustClaim(t, s, key, "owner-c", longLease, middleware.AlreadyDone)
}

func testConcurrentClaimsExactlyOneWins(t *testing.T, s middleware.DedupStore) {
	const n = 20
	key := newKey(t)
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		results = make([]middleware.ClaimResult, n)
		errs    = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			results[i], errs[i] = s.Claim(t.Context(), key, "owner-"+strconv.Itoa(i), longLease)
		})
	}
	close(start)
	wg.Wait()
	claimed := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("claim %d: %v", i, errs[i])
		}
		switch results[i] {
		case middleware.Claimed:
			claimed++
		case middleware.Busy:
		default:
			t.Errorf("claim %d: got %s, want Claimed or Busy", i, name(results[i]))
		}
	}
	if claimed != 1 {
		t.Fatalf("%d of %d concurrent claims won, want exactly 1", claimed, n)
	}
}

func testBusyWhileLeaseValid(t *testing.T, s middleware.DedupStore) {
	key := newKey(t)
	mustClaim(t, s, key, "owner-a", longLease, middleware.Claimed)
	mustClaim(t, s, key, "owner-b", longLease, middleware.Busy)
	mustClaim(t, s, key, "owner-c", shortLease, middleware.Busy)
	// A losing claim does not take the key over or extend anything.
	mustComplete(t, s, key, "owner-a", longTTL)
	mustClaim(t, s, key, "owner-b", longLease, middleware.AlreadyDone)
}

func testExpiredLeaseCanBeTakenOver(t *testing.T, s middleware.DedupStore) {
	key := newKey(t)
	start := time.Now()
	mustClaim(t, s, key, "owner-a", shortLease, middleware.Claimed)
	waitClaimed(t, s, key, "owner-b", start)
	// owner-b now holds the key like any fresh claimer.
	mustClaim(t, s, key, "owner-c", longLease, middleware.Busy)
	mustComplete(t, s, key, "owner-b", longTTL)
	mustClaim(t, s, key, "owner-c", longLease, middleware.AlreadyDone)
}

func testStaleOwnerCannotCompleteOrRelease(t *testing.T, s middleware.DedupStore) {
	ctx := t.Context()
	key := newKey(t)
	start := time.Now()
	mustClaim(t, s, key, "owner-a", shortLease, middleware.Claimed)
	waitClaimed(t, s, key, "owner-b", start)

	// owner-a's lease ran out while it worked; what it says now changes nothing.
	_ = s.Complete(ctx, key, "owner-a", longTTL)
	mustClaim(t, s, key, "owner-c", longLease, middleware.Busy)
	_ = s.Release(ctx, key, "owner-a")
	mustClaim(t, s, key, "owner-c", longLease, middleware.Busy)

	// The real holder still decides.
	mustRelease(t, s, key, "owner-b")
	mustClaim(t, s, key, "owner-c", longLease, middleware.Claimed)
	_ = s.Complete(ctx, key, "owner-b", longTTL) // no longer holds it
	mustClaim(t, s, key, "owner-d", longLease, middleware.Busy)
	mustComplete(t, s, key, "owner-c", longTTL)
	mustClaim(t, s, key, "owner-d", longLease, middleware.AlreadyDone)
}

func testDoneKeyExpiresAfterTTL(t *testing.T, s middleware.DedupStore) {
	key := newKey(t)
	mustClaim(t, s, key, "owner-a", longLease, middleware.Claimed)
	start := time.Now()
	mustComplete(t, s, key, "owner-a", shortLease)
	mustClaim(t, s, key, "owner-b", longLease, middleware.AlreadyDone)
	waitClaimedAfter(t, s, key, "owner-c", start, shortLease, middleware.AlreadyDone)
}

func testDistinctKeysAreIndependent(t *testing.T, s middleware.DedupStore) {
	k1, k2, k3 := newKey(t), newKey(t), newKey(t)
	mustClaim(t, s, k1, "owner-a", longLease, middleware.Claimed)
	mustClaim(t, s, k2, "owner-a", longLease, middleware.Claimed) // one owner, two keys
	mustClaim(t, s, k3, "owner-b", longLease, middleware.Claimed)

	mustComplete(t, s, k1, "owner-a", longTTL)
	mustClaim(t, s, k2, "owner-c", longLease, middleware.Busy)
	mustRelease(t, s, k3, "owner-b")

	mustClaim(t, s, k1, "owner-c", longLease, middleware.AlreadyDone)
	mustClaim(t, s, k2, "owner-c", longLease, middleware.Busy)
	mustClaim(t, s, k3, "owner-c", longLease, middleware.Claimed)
}

// waitClaimed polls until owner claims key after a shortLease claim taken at
// start ran out; until then every claim must be Busy.
func waitClaimed(t *testing.T, s middleware.DedupStore, key, owner string, start time.Time) {
	t.Helper()
	waitClaimedAfter(t, s, key, owner, start, shortLease, middleware.Busy)
}

// waitClaimedAfter polls until owner claims key. Claims before that must
// return before; the claim must not succeed earlier than d after start.
// start must be taken before the call that began d on the store's clock.
func waitClaimedAfter(t *testing.T, s middleware.DedupStore, key, owner string, start time.Time, d time.Duration, before middleware.ClaimResult) {
	t.Helper()
	for {
		r, err := s.Claim(t.Context(), key, owner, longLease)
		if err != nil {
			t.Fatalf("claim %q by %q: %v", key, owner, err)
		}
		elapsed := time.Since(start)
		switch r {
		case middleware.Claimed:
			if elapsed < d-clockSlack {
				t.Fatalf("claim %q by %q succeeded after %v, before the %v lease or ttl ran out", key, owner, elapsed, d)
			}
			return
		case before:
		default:
			t.Fatalf("claim %q by %q after %v: got %s, want %s or Claimed", key, owner, elapsed, name(r), name(before))
		}
		if elapsed > expiryDeadline {
			t.Fatalf("claim %q by %q still %s after %v; a %v lease or ttl should have run out", key, owner, name(r), elapsed, d)
		}
		time.Sleep(pollEvery)
	}
}

func mustClaim(t *testing.T, s middleware.DedupStore, key, owner string, lease time.Duration, want middleware.ClaimResult) {
	t.Helper()
	got, err := s.Claim(t.Context(), key, owner, lease)
	if err != nil {
		t.Fatalf("claim %q by %q: %v", key, owner, err)
	}
	if got != want {
		t.Fatalf("claim %q by %q: got %s, want %s", key, owner, name(got), name(want))
	}
}

func mustComplete(t *testing.T, s middleware.DedupStore, key, owner string, ttl time.Duration) {
	t.Helper()
	if err := s.Complete(t.Context(), key, owner, ttl); err != nil {
		t.Fatalf("complete %q by %q: %v", key, owner, err)
	}
}

func mustRelease(t *testing.T, s middleware.DedupStore, key, owner string) {
	t.Helper()
	if err := s.Release(t.Context(), key, owner); err != nil {
		t.Fatalf("release %q by %q: %v", key, owner, err)
	}
}

// newKey returns a key no other case or test run uses.
func newKey(t *testing.T) string {
	t.Helper()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "storetest-" + hex.EncodeToString(b[:])
}

// name spells a ClaimResult for failure messages.
func name(r middleware.ClaimResult) string {
	switch r {
	case middleware.Claimed:
		return "Claimed"
	case middleware.AlreadyDone:
		return "AlreadyDone"
	case middleware.Busy:
		return "Busy"
	}
	return "ClaimResult(" + strconv.Itoa(int(r)) + ")"
}
