// Package conformance is millrace's behaviour suite for transports: the same
// scenarios, run unchanged on every transport a service can choose, through
// the path a service takes — configuration (transport.kind and its section,
// as a service's environment would give them), the registry, the App with
// its default middleware stack.
//
// Each scenario starts one or more services (Apps) on fresh topics, publishes,
// and waits on the real broker (polling, bounded, never a fixed sleep) for
// what a user relies on:
//
//   - TypedRoundTrip: a typed command handler publishes a typed event that a
//     second handler receives, with the envelope (type, correlation and
//     causation ids) intact.
//   - FanOut: two services on one topic each receive every message.
//   - WorkQueue: two instances of one service share its messages: every
//     message is handled, and not by both.
//   - Retry: a handler that fails twice then succeeds handles the message
//     once, nothing poisoned.
//   - DelayedRetry: a message whose immediate retries are spent comes back
//     after the configured delay, and a message behind it is handled
//     meanwhile: a failing message never blocks its partition, queue or
//     consumer group.
//   - PoisonAndReplay: a permanent failure lands in the poison topic with
//     its failure metadata; dlq.List shows it and dlq.Replay sends it back to
//     the handler, counted.
//   - Dedup: the same message delivered twice is handled once.
//   - GracefulShutdown: a message in flight when the service stops is
//     finished and acked, so the next instance does not receive it again.
//
// A transport's test calls Run with a Target that points the kind at a
// broker; see conformance_test.go for memory, kafka (in-process kfake),
// amqp, postgres and mysql.
package conformance
