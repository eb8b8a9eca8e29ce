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

// PoisonQueue sets aside a message that cannot succeed: when the handler
// (with its retries inside) returns an error, a copy of the message goes to
// the poison topic with metadata that says why and where (the poison_* keys
// of package millrace: reason, handler, original topic, consumer group,
// service, attempts, first and last failure time). Only once that publish
// succeeded is the original acked; if it fails, the original is nacked, so
// nothing is ever lost. Held-back errors (open circuit breaker, duplicate in
// flight, dedup store down, shutdown) are never poisoned.
//
// Written anew rather than using Watermill's PoisonQueue, which records only
// the error text.
type PoisonQueue struct {
	// Publisher sends to the poison topic; required.
	Publisher message.Publisher
	// Topic is the poison topic; default "<service>.poison", from the
	// delivery's service name.
	Topic string
	// Logger receives a line per poisoned message at warn level; nil logs
	// nothing.
	Logger *slog.Logger
}

// Validate reports a missing Publisher.
func (p PoisonQueue) Validate() error {
	if p.Publisher == nil {
		return errors.New("poison queue: Publisher is required")
	}
	return nil
}

// TopicFor returns the poison topic used for service when Topic is empty.
func TopicFor(service string) string { return service + ".poison" }

// Middleware poisons failed messages as configured.
func (p PoisonQueue) Middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		produced, err := h(msg)
		if err == nil {
			return produced, nil
		}
		ctx := msg.Context()
		if HeldBack(ctx, err) {
			return nil, err
		}
		info := millrace.DeliveryFrom(ctx)
		if info == nil {
			info = &millrace.Delivery{}
		}
		topic := p.Topic
		if topic == "" {
			topic = TopicFor(info.Service)
		}
		now := time.Now().UTC().Format(time.RFC3339Nano)
		poisoned := msg.Copy()
		md := poisoned.Metadata
		md.Set(millrace.MetadataCorrelationID, CorrelationID(msg))
		md.Set(millrace.MetadataPoisonReason, err.Error())
		md.Set(millrace.MetadataPoisonHandler, info.Handler)
		md.Set(millrace.MetadataPoisonTopic, info.Topic)
		md.Set(millrace.MetadataPoisonGroup, info.Group)
		md.Set(millrace.MetadataPoisonService, info.Service)
		md.Set(millrace.MetadataPoisonAttempts, strconv.Itoa(metaInt(msg, millrace.MetadataRetryAttempts)+Attempts(err)))
		first := msg.Metadata.Get(millrace.MetadataFirstFailedAt)
		if first == "" {
			first = now
		}
		md.Set(millrace.MetadataPoisonFirstFailedAt, first)
		md.Set(millrace.MetadataPoisonLastFailedAt, now)
		if perr := p.Publisher.Publish(topic, poisoned); perr != nil {
			return nil, fmt.Errorf("publish to poison topic %s: %w (handler error: %v)", topic, perr, err)
		}
		if p.Logger != nil {
			p.Logger.LogAttrs(ctx, slog.LevelWarn, "message poisoned",
				slog.String("handler", info.Handler), slog.String("message_id", msg.UUID),
				slog.String("poison_topic", topic), slog.Any("error", err))
		}
		return nil, nil
	}
}
