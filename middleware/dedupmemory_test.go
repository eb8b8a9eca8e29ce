package middleware_test

import (
	"context"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/millrace/millrace/middleware"
	"github.com/millrace/millrace/middleware/dedupstore/storetest"
)

func TestMemoryStore_Conformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) middleware.DedupStore {
		return middleware.NewMemoryStore(1000)
	})
}

func TestMemoryStore_StaysBoundedOverMillionsOfKeys(t *testing.T) {
	const maxKeys = 10_000
	n := 2_000_000
	if testing.Short() {
		n = 200_000
	}
	s := middleware.NewMemoryStore(maxKeys)
	ctx := context.Background()
	for i := range n {
		key := strconv.Itoa(i)
		if r, err := s.Claim(ctx, key, "o", time.Minute); err != nil || r != middleware.Claimed {
			t.Fatalf("claim %d: %v, %v", i, r, err)
		}
		if err := s.Complete(ctx, key, "o", time.Hour); err != nil {
			t.Fatal(err)
		}
		if i%100_000 == 0 && s.Len() > maxKeys {
			t.Fatalf("after %d keys the store holds %d, want at most %d", i+1, s.Len(), maxKeys)
		}
	}
	if got := s.Len(); got > maxKeys {
		t.Fatalf("after %d keys the store holds %d, want at most %d", n, got, maxKeys)
	}
	// The newest keys are remembered, the oldest evicted.
	if r, _ := s.Claim(ctx, strconv.Itoa(n-1), "p", time.Minute); r != middleware.AlreadyDone {
		t.Errorf("newest key: got %v, want AlreadyDone", r)
	}
	if r, _ := s.Claim(ctx, "0", "p", time.Minute); r != middleware.Claimed {
		t.Errorf("oldest key: got %v, want Claimed (evicted)", r)
	}
}

func TestMemoryStore_EvictsLeastRecentlySeenDoneKey(t *testing.T) {
	ctx := context.Background()
	s := middleware.NewMemoryStore(3)
	for _, k := range []string{"a", "b", "c"} {
		_, _ = s.Claim(ctx, k, "o", time.Minute)
		_ = s.Complete(ctx, k, "o", time.Hour)
	}
	// A duplicate of "a" makes it recently seen; "b" is now the oldest.
	if r, _ := s.Claim(ctx, "a", "p", time.Minute); r != middleware.AlreadyDone {
		t.Fatalf("a: got %v, want AlreadyDone", r)
	}
	if r, _ := s.Claim(ctx, "d", "o", time.Minute); r != middleware.Claimed {
		t.Fatalf("d: got %v, want Claimed", r)
	}
	for k, want := range map[string]middleware.ClaimResult{"a": middleware.AlreadyDone, "c": middleware.AlreadyDone, "d": middleware.Busy} {
		if r, _ := s.Claim(ctx, k, "p", time.Minute); r != want {
			t.Errorf("%s: got %v, want %v", k, r, want)
		}
	}
	if s.Len() != 3 {
		t.Errorf("Len() = %d, want 3", s.Len())
	}
}

func TestMemoryStore_NeverEvictsLiveClaims(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		s := middleware.NewMemoryStore(2)
		_, _ = s.Claim(ctx, "a", "o", time.Minute)
		_, _ = s.Claim(ctx, "b", "o", time.Minute)
		if r, _ := s.Claim(ctx, "c", "o", time.Minute); r != middleware.Claimed {
			t.Fatalf("c: got %v, want Claimed", r)
		}
		if got := s.Len(); got != 3 {
			t.Fatalf("Len() = %d, want 3: live claims stay beyond the bound", got)
		}
		for _, k := range []string{"a", "b", "c"} {
			if r, _ := s.Claim(ctx, k, "p", time.Minute); r != middleware.Busy {
				t.Errorf("%s: got %v, want Busy", k, r)
			}
		}
		// Once leases ran out, expired claims are dropped to make room.
		time.Sleep(time.Minute)
		for _, k := range []string{"d", "e", "f"} {
			_, _ = s.Claim(ctx, k, "o", time.Minute)
		}
		if got := s.Len(); got > 3 {
			t.Fatalf("Len() = %d after leases ran out, want at most 3", got)
		}
	})
}

func TestMemoryStore_DropsExpiredKeysBelowBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		s := middleware.NewMemoryStore(1000)
		for i := range 100 {
			k := strconv.Itoa(i)
			_, _ = s.Claim(ctx, k, "o", time.Minute)
			_ = s.Complete(ctx, k, "o", time.Second)
		}
		time.Sleep(time.Second)
		for i := range 100 {
			_, _ = s.Claim(ctx, "new-"+strconv.Itoa(i), "o", time.Minute)
		}
		// Each call drops a few expired keys, so the 100 old ones are gone.
		if got := s.Len(); got != 100 {
			t.Fatalf("Len() = %d, want 100 (expired keys dropped lazily)", got)
		}
	})
}

func BenchmarkMemoryStore(b *testing.B) {
	ctx := context.Background()
	b.Run("claim complete", func(b *testing.B) {
		s := middleware.NewMemoryStore(100_000)
		keys := make([]string, b.N)
		for i := range keys {
			keys[i] = strconv.Itoa(i)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			_, _ = s.Claim(ctx, keys[i], "o", time.Minute)
			_ = s.Complete(ctx, keys[i], "o", time.Hour)
		}
	})
	b.Run("claim done key parallel", func(b *testing.B) {
		s := middleware.NewMemoryStore(100_000)
		_, _ = s.Claim(ctx, "k", "o", time.Minute)
		_ = s.Complete(ctx, "k", "o", time.Hour)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_, _ = s.Claim(ctx, "k", "p", time.Minute)
			}
		})
	})
}
