// Package middleware holds millrace's router middleware: Watermill
// message.HandlerMiddleware values, so they work in millrace's App and in a
// plain Watermill router alike. Each file is one concern: Recoverer,
// Correlation, Timeout, Retry, DelayedRetry, PoisonQueue, CircuitBreaker,
// Throttler and Dedup, with Dedup's stores (MemoryStore here; SQL and Redis
// in dedupstore/).
//
// The framework installs them as one default stack, in an order documented
// on framework.MiddlewareConfig; handlers can tune or switch off each part.
// Used on their own, the same order applies:
//
//	retry := middleware.Retry{}
//	retry.SetDefaults()
//	router.AddMiddleware(
//		middleware.Correlation,
//		middleware.PoisonQueue{Publisher: pub, Topic: "orders.poison"}.Middleware,
//		retry.Middleware,
//		middleware.Timeout(time.Minute),
//		middleware.Recoverer,
//	)
//
// Errors that mean "try later" rather than "failed" (an open breaker, a
// duplicate in flight, an unreachable dedup store, shutdown) are recognised
// by HeldBack and are never retried or poisoned.
package middleware
