package middleware

import (
	"context"
	"errors"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Delayer schedules a message for redelivery to one consumer group of a
// topic after a delay, without blocking the consumer meanwhile. Transports
// implement it natively (memory: a timer per group; AMQP: a wait queue with
// TTL dead-lettering back; Kafka: retry topics; SQL: a not-before time).
// Delay returns once the message is durably scheduled; only then may the
// caller ack the original.
type Delayer interface {
	Delay(ctx context.Context, topic, group string, msg *message.Message, delay time.Duration) error
}

// ClaimResult is the outcome of DedupStore.Claim.
type ClaimResult int

const (
	// Claimed: the caller holds the key until Complete, Release or the
	// lease's end, and must run the handler.
	Claimed ClaimResult = iota + 1
	// AlreadyDone: a delivery with this key completed before: skip it.
	AlreadyDone
	// Busy: another delivery holds an unexpired claim on the key: try
	// again later (nack), do not run the handler.
	Busy
)

// DedupStore remembers which idempotency keys were processed. Claims make
// concurrent deliveries of one key exclusive: only the holder of an
// unexpired claim runs the handler; a claim whose lease expired (its process
// died) can be taken over. Every method is safe for concurrent use across
// processes sharing the store.
type DedupStore interface {
	// Claim tries to claim key for owner (a unique token per delivery) for
	// lease.
	Claim(ctx context.Context, key, owner string, lease time.Duration) (ClaimResult, error)
	// Complete marks key done if owner still holds it; done keys are
	// remembered for ttl.
	Complete(ctx context.Context, key, owner string, ttl time.Duration) error
	// Release drops owner's claim on key (the handler failed), so a
	// redelivery can claim it at once.
	Release(ctx context.Context, key, owner string) error
}

// ErrStoreUnavailable wraps a DedupStore error: the store could not be
// reached. Dedup fails closed on it (the message is nacked) unless
// configured to fail open.
var ErrStoreUnavailable = errors.New("dedup store unavailable")
