package framework

import (
	"io"
	"log/slog"
)

// NewLogger returns the slog logger that cfg's log section asks for (level
// debug, info, warn or error; format text or json), writing to w. The App
// adds the service name; handlers add their name and the message id (see
// Logger). Watermill's own components log through it via
// watermill.NewSlogLogger.
func NewLogger(cfg *Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.slogLevel()}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
