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

// PoisonConfig configures the poison queue ([NewPoisonQueue]; config
// section middleware.poison). The zero value is the default.
type PoisonConfig struct {
	// Topic is the poison topic; empty (default) is [TopicFor] the
	// consuming service ("<service>.poison", service from [ConsumerOf]).
	Topic string `yaml:"topic"`
}

// DefaultPoisonConfig returns the defaults of [PoisonConfig]: the poison
// topic named after the consuming service.
func DefaultPoisonConfig() PoisonConfig { return PoisonConfig{} }

// Validate reports nothing today: every topic name is for the transport to
// judge. It is here so that every middleware config has one.
func (c PoisonConfig) Validate() error { return nil }

// TopicFor returns the poison topic of service when [PoisonConfig.Topic]
// is empty: "<service>.poison".
func TopicFor(service string) string { return service + ".poison" }

// PoisonQueue sets aside a message that cannot succeed: when the handler
// (with its retries inside) returns an error, a copy of the message goes to
// the poison topic with metadata that says why and where (the poison_* keys
// of package millrace: reason, handler, original topic, consumer group,
// service, attempts, first and last failure time, all from [ConsumerOf]).
// Only once that publish succeeded is the original acked; if it fails, the
// original is nacked, so nothing is ever lost. Held-back errors (open
// circuit breaker, duplicate in flight, dedup store down, shutdown) are
// never poisoned.
//
// Written anew rather than using Watermill's PoisonQueue, which records only
// the error text.
type PoisonQueue struct {
	publisher message.Publisher
	topic     string
	logger    *slog.Logger
}

// NewPoisonQueue returns a poison queue configured by cfg that publishes
// with publisher.
func NewPoisonQueue(cfg PoisonConfig, publisher message.Publisher, opts ...Option) (*PoisonQueue, error) {
	var errs []error
	if publisher == nil {
		errs = append(errs, errors.New("poison queue: nil Publisher"))
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("poison queue: %w", err))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	o := applyOptions(opts)
	return &PoisonQueue{publisher: publisher, topic: cfg.Topic, logger: o.logger}, nil
}

// Middleware poisons failed messages as configured.
func (p *PoisonQueue) Middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		produced, err := h(msg)
		if err == nil {
			return produced, nil
		}
		ctx := msg.Context()
		if HeldBack(ctx, err) {
			return nil, err
		}
		c := ConsumerOf(ctx)
		topic := p.topic
		if topic == "" {
			topic = TopicFor(c.Service)
		}
		now := time.Now().UTC().Format(time.RFC3339Nano)
		poisoned := msg.Copy()
		md := poisoned.Metadata
		Correlate(nil, poisoned) // the copy keeps the flow; a message that started one is its own
		md.Set(millrace.MetadataPoisonReason, err.Error())
		md.Set(millrace.MetadataPoisonHandler, c.Handler)
		md.Set(millrace.MetadataPoisonTopic, c.Topic)
		md.Set(millrace.MetadataPoisonGroup, c.Group)
		md.Set(millrace.MetadataPoisonService, c.Service)
		md.Set(millrace.MetadataPoisonAttempts, strconv.Itoa(metaInt(msg, millrace.MetadataRetryAttempts)+Attempts(err)))
		first := msg.Metadata.Get(millrace.MetadataFirstFailedAt)
		if first == "" {
			first = now
		}
		md.Set(millrace.MetadataPoisonFirstFailedAt, first)
		md.Set(millrace.MetadataPoisonLastFailedAt, now)
		if perr := p.publisher.Publish(topic, poisoned); perr != nil {
			return nil, fmt.Errorf("publish to poison topic %s: %w (handler error: %v)", topic, perr, err)
		}
		settle(ctx, Poisoned)
		if p.logger != nil {
			p.logger.LogAttrs(ctx, slog.LevelWarn, "message poisoned",
				slog.String("handler", c.Handler), slog.String("message_id", msg.UUID),
				slog.String("poison_topic", topic), slog.Any("error", err))
		}
		return nil, nil
	}
}
