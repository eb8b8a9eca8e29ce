package middleware

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
)

// DelayedRetry takes over when immediate retries are spent: it schedules the
// message for redelivery to the same consumer group after a growing delay
// (Delays[0], then Delays[1], ...) through the transport's Delayer, and acks
// the original once the copy is scheduled. The consumer is not blocked
// meanwhile. The copy carries the round in retry_rounds, the attempts made so
// far in retry_attempts and the first failure time in first_failed_at, so the
// poison queue can report them when the last round fails too.
//
// Permanent and held-back errors pass through untouched, as does every
// error once all rounds are spent (the poison queue, outside, takes it).
// If scheduling fails the error is returned: the message is nacked, never
// lost.
type DelayedRetry struct {
	// Delayer schedules the redelivery; required.
	Delayer Delayer
	// Delays are the waits of the successive rounds; default 10s, 1m, 5m.
	Delays []time.Duration
	// Logger receives a line per scheduled message at info level; nil logs
	// nothing.
	Logger *slog.Logger
}

// DefaultDelays are DelayedRetry's default rounds.
var DefaultDelays = []time.Duration{10 * time.Second, time.Minute, 5 * time.Minute}

// Validate reports a missing Delayer or a non-positive delay.
func (d DelayedRetry) Validate() error {
	if d.Delayer == nil {
		return errors.New("delayed retry: Delayer is required")
	}
	for i, v := range d.Delays {
		if v <= 0 {
			return fmt.Errorf("delayed retry: Delays[%d] %s: must be greater than 0", i, v)
		}
	}
	return nil
}

// Middleware schedules failed messages as configured.
func (d DelayedRetry) Middleware(h message.HandlerFunc) message.HandlerFunc {
	delays := d.Delays
	if delays == nil {
		delays = DefaultDelays
	}
	return func(msg *message.Message) ([]*message.Message, error) {
		produced, err := h(msg)
		if err == nil {
			return produced, nil
		}
		ctx := msg.Context()
		if millrace.IsPermanent(err) || HeldBack(ctx, err) {
			return nil, err
		}
		round := metaInt(msg, millrace.MetadataRetryRounds)
		if round >= len(delays) {
			return nil, err
		}
		info := millrace.DeliveryFrom(ctx)
		if info == nil {
			return nil, fmt.Errorf("delayed retry: no delivery information on the context: %w", err)
		}
		again := msg.Copy()
		again.Metadata.Set(millrace.MetadataRetryRounds, strconv.Itoa(round+1))
		again.Metadata.Set(millrace.MetadataRetryAttempts, strconv.Itoa(metaInt(msg, millrace.MetadataRetryAttempts)+Attempts(err)))
		if again.Metadata.Get(millrace.MetadataFirstFailedAt) == "" {
			again.Metadata.Set(millrace.MetadataFirstFailedAt, time.Now().UTC().Format(time.RFC3339Nano))
		}
		if serr := d.Delayer.Delay(ctx, info.Topic, info.Group, again, delays[round]); serr != nil {
			return nil, fmt.Errorf("schedule delayed retry: %w (handler error: %v)", serr, err)
		}
		if d.Logger != nil {
			d.Logger.LogAttrs(ctx, slog.LevelInfo, "handler failed; delayed retry scheduled",
				slog.String("handler", info.Handler), slog.String("message_id", msg.UUID),
				slog.Int("round", round+1), slog.Duration("after", delays[round]), slog.Any("error", err))
		}
		return nil, nil
	}
}

// metaInt reads a non-negative integer from msg's metadata; 0 if absent or
// malformed.
func metaInt(msg *message.Message, key string) int {
	n, err := strconv.Atoi(msg.Metadata.Get(key))
	if err != nil || n < 0 {
		return 0
	}
	return n
}
