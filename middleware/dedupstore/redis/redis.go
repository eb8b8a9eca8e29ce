package redis

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/millrace/millrace/middleware"
)

// doneValue is stored under a done key. Owners are delivery tokens that
// never start with a NUL byte.
const doneValue = "\x00done"

// claimAttempts bounds retries of a claim that races with the key's expiry.
const claimAttempts = 3

// completeScript marks KEYS[1] done for ARGV[2] ms if ARGV[1] holds it or
// nobody does (the owner's lease ran out but nobody took over: its handler
// did succeed). It leaves another owner's claim and a done key alone.
var completeScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == false or v == ARGV[1] then
	redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[2])
	return 1
end
return 0
`)

// releaseScript deletes KEYS[1] if ARGV[1] holds it.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
return 0
`)

// Store is a middleware.DedupStore on Redis. Each key is one Redis string
// under the store's prefix: the owner's token while claimed (expiring with
// the lease), a done marker once completed (expiring with the ttl). Leases
// and ttls are rounded down to whole milliseconds, at least one. Every error
// from Redis (connection refused, timeout, a cancelled ctx) is returned
// wrapping middleware.ErrStoreUnavailable as well as the client's error.
type Store struct {
	client redis.UniversalClient
	prefix string
}

// New returns a Store keeping its keys in client under prefix (for example
// "orders:dedup:"). Stores that share a Redis must use prefixes that do not
// overlap, unless they are meant to share keys. Closing client is the
// caller's job.
func New(client redis.UniversalClient, prefix string) *Store {
	return &Store{client: client, prefix: prefix}
}

// Claim implements middleware.DedupStore: SET NX PX, and on a taken key a
// GET to tell a done key from a live claim.
func (s *Store) Claim(ctx context.Context, key, owner string, lease time.Duration) (middleware.ClaimResult, error) {
	k := s.prefix + key
	for range claimAttempts {
		ok, err := s.client.SetNX(ctx, k, owner, millis(lease)).Result()
		if err != nil {
			return 0, unavailable("claim", key, err)
		}
		if ok {
			return middleware.Claimed, nil
		}
		v, err := s.client.Get(ctx, k).Result()
		switch {
		case errors.Is(err, redis.Nil):
			continue // expired between SET and GET: try again
		case err != nil:
			return 0, unavailable("claim", key, err)
		case v == doneValue:
			return middleware.AlreadyDone, nil
		default:
			return middleware.Busy, nil
		}
	}
	// The key keeps expiring under us: let the message come back later.
	return middleware.Busy, nil
}

// Complete implements middleware.DedupStore. It marks key done unless
// another owner holds a claim on it or it is done already.
func (s *Store) Complete(ctx context.Context, key, owner string, ttl time.Duration) error {
	err := completeScript.Run(ctx, s.client, []string{s.prefix + key}, owner, millis(ttl).Milliseconds(), doneValue).Err()
	if err != nil {
		return unavailable("complete", key, err)
	}
	return nil
}

// Release implements middleware.DedupStore. It drops key only if owner
// holds it.
func (s *Store) Release(ctx context.Context, key, owner string) error {
	if err := releaseScript.Run(ctx, s.client, []string{s.prefix + key}, owner).Err(); err != nil {
		return unavailable("release", key, err)
	}
	return nil
}

// millis rounds d down to whole milliseconds, at least one: Redis's PX unit.
func millis(d time.Duration) time.Duration {
	if d < time.Millisecond {
		return time.Millisecond
	}
	return d.Truncate(time.Millisecond)
}

func unavailable(op, key string, err error) error {
	return fmt.Errorf("redis dedup store: %s %q: %w: %w", op, key, middleware.ErrStoreUnavailable, err)
}

var _ middleware.DedupStore = (*Store)(nil)
