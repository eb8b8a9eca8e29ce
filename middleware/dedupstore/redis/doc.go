// Package redisstore is a middleware.DedupStore on Redis, for services that
// run several instances and already have a Redis at hand. Claims are keys
// set with SET NX PX, so Redis's own clock ends leases and forgets done keys;
// Complete and Release check the owner in a Lua script, atomically. It works
// with a single Redis, Sentinel or Cluster (every operation touches one key).
//
// The package lives in directory dedupstore/redis but is named redisstore,
// so it can be imported beside github.com/redis/go-redis/v9 without a rename:
//
//	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
//	dedup := middleware.Dedup{Store: redisstore.New(client, "orders:dedup:")}
//	router.AddMiddleware(dedup.Middleware)
package redisstore
