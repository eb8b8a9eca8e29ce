package transports

import (
	"context"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill"
)

// WatermillLogger adapts logger for Watermill's components, like
// watermill.NewSlogLogger, but drops debug and trace lines before building
// their fields when logger does not log that level. Watermill's adapters
// log several trace lines per message; Watermill's own slog adapter converts
// their fields to attributes first and only then lets slog discard them,
// which cost a Kafka consumer about a tenth of its CPU. A nil logger means
// slog.Default().
func WatermillLogger(logger *slog.Logger) watermill.LoggerAdapter {
	if logger == nil {
		logger = slog.Default()
	}
	return levelled{LoggerAdapter: watermill.NewSlogLogger(logger), logger: logger}
}

// levelled is a watermill.LoggerAdapter that checks the level first.
type levelled struct {
	watermill.LoggerAdapter
	logger *slog.Logger
}

func (l levelled) Debug(msg string, fields watermill.LogFields) {
	if l.logger.Enabled(context.Background(), slog.LevelDebug) {
		l.LoggerAdapter.Debug(msg, fields)
	}
}

func (l levelled) Trace(msg string, fields watermill.LogFields) {
	if l.logger.Enabled(context.Background(), watermill.LevelTrace) {
		l.LoggerAdapter.Trace(msg, fields)
	}
}

// With keeps the level check: slog handlers decide by level, not by
// attributes.
func (l levelled) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return levelled{LoggerAdapter: l.LoggerAdapter.With(fields), logger: l.logger}
}
