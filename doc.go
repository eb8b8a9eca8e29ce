// Package millrace holds the few names every layer of millrace shares: the
// message envelope (the metadata keys every message carries), the error
// markers that decide how a failed message is treated, and the error type
// that reports bad configuration.
//
// It sits below every other package of the module and imports nothing of
// millrace, so transports, middleware, cqrs, saga and framework can all use
// the same names.
//
// Most services never import it directly: they use package framework, which
// stamps the envelope on every message it publishes. Handlers reach for it to
// mark a failure that retrying cannot fix:
//
//	if order.Total < 0 {
//		return millrace.Permanent(fmt.Errorf("order %s: negative total %d", order.ID, order.Total))
//	}
package millrace
