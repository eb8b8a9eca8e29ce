// Package middleware holds millrace's router middleware: Watermill
// message.HandlerMiddleware, so they work in millrace's App and in a plain
// Watermill message.Router alike. Each file is one concern: [Recoverer],
// [Correlation], [Timeout], [Retry], [DelayedRetry], [PoisonQueue],
// [Breaker], [Throttle] and [Dedup], with Dedup's stores ([MemoryStore]
// here; SQL and Redis in dedupstore/).
//
// Every middleware with settings has the same shape: a config type with
// YAML tags (the framework's middleware: section embeds it), a function
// that returns its defaults, a Validate method that returns every bad value
// as a [millrace.ConfigError] at once, and a constructor that takes the
// config, what the middleware cannot do without (a publisher, a store), and
// [Option] values, and returns an error instead of panicking:
//
//	retry, err := middleware.NewRetry(middleware.DefaultRetryConfig(), middleware.WithLogger(logger))
//
// Names (the handler, its topic and consumer group, the service) come from
// one place, [ConsumerOf]: the App's [millrace.Consumer] on the message's
// context, or in a plain router the handler's name and topic from
// Watermill's context ([Identify] sets them explicitly). Every wait (a
// message held back by an open breaker, a throttled one, a retry's backoff)
// ends as soon as the service begins to shut down, and the message is
// handed back to the broker.
//
// The framework installs them as one default stack, in an order documented
// on framework.MiddlewareConfig; handlers can tune or switch off each part.
// Used on their own, the same order applies:
//
//	poison, _ := middleware.NewPoisonQueue(middleware.PoisonConfig{Topic: "orders.poison"}, pub)
//	retry, _ := middleware.NewRetry(middleware.DefaultRetryConfig())
//	router.AddMiddleware(
//		middleware.Correlation,
//		poison.Middleware,
//		retry.Middleware,
//		middleware.Timeout(time.Minute),
//		middleware.Recoverer,
//	)
//
// Errors that mean "try later" rather than "failed" (an open breaker, a
// duplicate in flight, an unreachable dedup store, shutdown) are recognised
// by [HeldBack] and are never retried or poisoned.
package middleware
