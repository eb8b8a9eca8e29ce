package redis_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/millrace/millrace/middleware"
	redisstore "github.com/millrace/millrace/middleware/dedupstore/redis"
	"github.com/millrace/millrace/middleware/dedupstore/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// redisAddr is the Redis the tests use: MILLRACE_REDIS_ADDR, or the one on
// the machine.
func redisAddr() string {
	if a := os.Getenv("MILLRACE_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// newStore returns a store on the test Redis under a prefix of its own, and
// deletes the prefix's keys when the test ends.
func newStore(t *testing.T) middleware.DedupStore {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: redisAddr()})
	if err := client.Ping(t.Context()).Err(); err != nil {
		_ = client.Close()
		t.Fatalf("Redis at %s (set MILLRACE_REDIS_ADDR): %v", redisAddr(), err)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	prefix := "millrace-test:dedup:" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		iter := client.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			client.Del(ctx, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("clean up %s*: %v", prefix, err)
		}
		_ = client.Close()
	})
	return redisstore.New(client, prefix)
}

func TestStore_Conformance(t *testing.T) {
	storetest.Run(t, newStore)
}

func TestStore_UnreachableRedisIsStoreUnavailable(t *testing.T) {
	client := redis.NewClient(&redis.Options{
		Addr:          "127.0.0.1:1",
		DialTimeout:   200 * time.Millisecond,
		MaxRetries:    -1,
		DialerRetries: 1,
	})
	t.Cleanup(func() { _ = client.Close() })
	s := redisstore.New(client, "x:")
	ctx := t.Context()

	_, claimErr := s.Claim(ctx, "k", "o", time.Second)
	for name, err := range map[string]error{
		"Claim":    claimErr,
		"Complete": s.Complete(ctx, "k", "o", time.Second),
		"Release":  s.Release(ctx, "k", "o"),
	} {
		if !errors.Is(err, middleware.ErrStoreUnavailable) {
			t.Errorf("%s: got %v, want an error wrapping ErrStoreUnavailable", name, err)
		}
	}

	// Through the middleware, the message is nacked and the handler not run.
	ran := false
	dedup, err := middleware.NewDedup(middleware.DefaultDedupConfig(), s)
	if err != nil {
		t.Fatal(err)
	}
	h := dedup.Middleware(func(*message.Message) ([]*message.Message, error) {
		ran = true
		return nil, nil
	})
	if _, err := h(message.NewMessage("m-1", nil)); !errors.Is(err, middleware.ErrStoreUnavailable) || ran {
		t.Fatalf("got %v (handler ran: %v), want ErrStoreUnavailable and no run", err, ran)
	}
}

func TestStore_KeysExpireInRedis(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: redisAddr()})
	t.Cleanup(func() { _ = client.Close() })
	prefix := "millrace-test:dedup:expire:"
	s := redisstore.New(client, prefix)
	ctx := t.Context()
	t.Cleanup(func() { client.Del(context.Background(), prefix+"k") })

	if _, err := s.Claim(ctx, "k", "o", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if ttl := client.PTTL(ctx, prefix+"k").Val(); ttl <= 0 || ttl > 30*time.Second {
		t.Fatalf("claimed key's PTTL = %v, want the 30s lease", ttl)
	}
	if err := s.Complete(ctx, "k", "o", time.Hour); err != nil {
		t.Fatal(err)
	}
	if ttl := client.PTTL(ctx, prefix+"k").Val(); ttl <= 30*time.Second || ttl > time.Hour {
		t.Fatalf("done key's PTTL = %v, want the 1h ttl", ttl)
	}
}
