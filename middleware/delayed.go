package middleware

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
)

// DelayedRetryConfig configures delayed retries ([NewDelayedRetry]; config
// section middleware.delayed_retry). Start from [DefaultDelayedRetryConfig].
type DelayedRetryConfig struct {
	// Delays are the waits of the successive rounds; at least one. Default
	// [10s, 1m, 5m].
	Delays []time.Duration `yaml:"delays"`
}

// DefaultDelayedRetryConfig returns the defaults of [DelayedRetryConfig]:
// rounds after 10s, 1m and 5m.
func DefaultDelayedRetryConfig() DelayedRetryConfig {
	return DelayedRetryConfig{Delays: []time.Duration{10 * time.Second, time.Minute, 5 * time.Minute}}
}

// Validate returns a [millrace.ConfigError] for every bad value, keyed
// relative to the section (delays, delays[1], ...), all at once.
func (c DelayedRetryConfig) Validate() error {
	var errs []error
	if len(c.Delays) == 0 {
		errs = append(errs, configErr("delays", "[]", "must list at least one delay"))
	}
	for i, d := range c.Delays {
		if d <= 0 {
			errs = append(errs, configErr(fmt.Sprintf("delays[%d]", i), d.String(), "must be greater than 0"))
		}
	}
	return millrace.JoinConfigErrors(errs)
}

// DelayedRetry takes over when immediate retries are spent: it schedules the
// message for redelivery to the same consumer group after a growing delay
// (Delays[0], then Delays[1], ...) through the transport's [Delayer], and
// acks the original once the copy is scheduled. The consumer is not blocked
// meanwhile. The copy carries the round in retry_rounds, the attempts made so
// far in retry_attempts and the first failure time in first_failed_at, so the
// poison queue can report them when the last round fails too. The topic and
// group come from [ConsumerOf].
//
// Permanent and held-back errors pass through untouched, as does every
// error once all rounds are spent (the poison queue, outside, takes it).
// If scheduling fails the error is returned: the message is nacked, never
// lost.
type DelayedRetry struct {
	delayer Delayer
	delays  []time.Duration
	logger  *slog.Logger
}

// NewDelayedRetry returns delayed retries configured by cfg that schedule
// through delayer, or the configuration's errors.
func NewDelayedRetry(cfg DelayedRetryConfig, delayer Delayer, opts ...Option) (*DelayedRetry, error) {
	var errs []error
	if delayer == nil {
		errs = append(errs, errors.New("delayed retry: nil Delayer"))
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("delayed retry: %w", err))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	o := applyOptions(opts)
	return &DelayedRetry{delayer: delayer, delays: slices.Clone(cfg.Delays), logger: o.logger}, nil
}

// Middleware schedules failed messages as configured.
func (d *DelayedRetry) Middleware(h message.HandlerFunc) message.HandlerFunc {
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
		if round >= len(d.delays) {
			return nil, err
		}
		c := ConsumerOf(ctx)
		again := msg.Copy()
		again.Metadata.Set(millrace.MetadataRetryRounds, strconv.Itoa(round+1))
		again.Metadata.Set(millrace.MetadataRetryAttempts, strconv.Itoa(metaInt(msg, millrace.MetadataRetryAttempts)+Attempts(err)))
		if again.Metadata.Get(millrace.MetadataFirstFailedAt) == "" {
			again.Metadata.Set(millrace.MetadataFirstFailedAt, time.Now().UTC().Format(time.RFC3339Nano))
		}
		if serr := d.delayer.Delay(ctx, c.Topic, c.Group, again, d.delays[round]); serr != nil {
			return nil, fmt.Errorf("schedule delayed retry: %w (handler error: %v)", serr, err)
		}
		settle(ctx, Delayed)
		if d.logger != nil {
			d.logger.LogAttrs(ctx, slog.LevelInfo, "handler failed; delayed retry scheduled",
				slog.String("handler", c.Handler), slog.String("message_id", msg.UUID),
				slog.Int("round", round+1), slog.Duration("after", d.delays[round]), slog.Any("error", err))
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
