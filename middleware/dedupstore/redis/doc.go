// Package redis is a [middleware.DedupStore] on Redis, for services that
// run several instances and already have a Redis at hand. Claims are keys
// set with SET NX PX, so Redis's own clock ends leases and forgets done keys;
// Complete and Release check the owner in a Lua script, atomically. It works
// with a single Redis, Sentinel or Cluster (every operation touches one key).
//
// Its name is go-redis's too; import one of them under another name:
//
//	import (
//		goredis "github.com/redis/go-redis/v9"
//		redisstore "github.com/millrace/millrace/middleware/dedupstore/redis"
//	)
//
//	client := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:6379"})
//	dedup, err := middleware.NewDedup(middleware.DefaultDedupConfig(), redisstore.New(client, "orders:dedup:"))
//	if err != nil {
//		return err
//	}
//	router.AddMiddleware(dedup.Middleware)
package redis
