package middleware

import (
	"context"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Timeout puts a deadline of d on the handler's context for each attempt.
// Unlike Watermill's Timeout it restores the message's original context
// afterwards, so an attempt retried by outer middleware gets a fresh
// deadline instead of an expired one. d <= 0 returns h unchanged.
func Timeout(d time.Duration) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		if d <= 0 {
			return h
		}
		return func(msg *message.Message) ([]*message.Message, error) {
			orig := msg.Context()
			ctx, cancel := context.WithTimeout(orig, d)
			msg.SetContext(ctx)
			defer func() {
				cancel()
				msg.SetContext(orig)
			}()
			return h(msg)
		}
	}
}
