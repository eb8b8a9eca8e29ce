package sql

import (
	"context"
	"log/slog"
	"strings"

	"github.com/ThreeDotsLabs/watermill"
)

// subscriptionLogger is the logger of one watermill-sql subscription of a
// group: the topic's or the group's private topic's. It writes to the
// transport's slog logger what an operator needs at info level and above,
// in the user's names, and keeps watermill-sql's detail for debug:
//
//   - watermill-sql's info lines are about a subscription's life ("Stopping
//     consume, context canceled", "Discarding queued message, subscriber
//     closing" on every clean shutdown): debug. The one exception is a
//     message dropped because its ack deadline passed while the
//     subscription runs, which is a warning: a handler too slow for
//     ack_deadline, whose message comes again.
//   - Its errors stay errors, except those of a subscription that is
//     ending (its context ended or Close started), whose cancelled
//     queries and rollbacks are expected, and a failed rollback, which
//     only follows an error already logged: debug.
//   - Lines name the user's topic and the group ("topic", "group", and
//     "delayed" for the subscription of the group's delayed messages),
//     never the private topic <topic>.__group.<group>, watermill-sql's
//     subscriber id or its consumer_group field; debug lines carry those
//     as well, the private topic as "table_topic".
//
// Fields are merged only for a line that is logged: watermill-sql calls
// With for every message it delivers.
type subscriptionLogger struct {
	log     *slog.Logger
	topic   string // the user's
	group   string
	delayed bool

	// ending reports a subscription that is ending.
	ending func() bool

	parent *subscriptionLogger
	fields watermill.LogFields // added by this With
}

// watermill-sql's messages that subscriptionLogger treats apart.
const (
	wsqlDiscardCancelled = "Discarding queued message, context canceled"
	wsqlRollbackPrefix   = "could not rollback"
)

func (l *subscriptionLogger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	c := *l
	c.parent, c.fields = l, fields
	return &c
}

func (l *subscriptionLogger) Error(msg string, err error, fields watermill.LogFields) {
	level := slog.LevelError
	if l.ending() {
		level, msg = slog.LevelDebug, msg+" (subscription ending)"
	} else if strings.HasPrefix(msg, wsqlRollbackPrefix) {
		level = slog.LevelDebug
	}
	l.write(level, msg, fields, slog.Any("error", err))
}

func (l *subscriptionLogger) Info(msg string, fields watermill.LogFields) {
	if msg == wsqlDiscardCancelled && !l.ending() {
		l.write(slog.LevelWarn, "Message not settled within ack_deadline; it will be delivered again", fields)
		return
	}
	l.write(slog.LevelDebug, msg, fields)
}

func (l *subscriptionLogger) Debug(msg string, fields watermill.LogFields) {
	l.write(slog.LevelDebug, msg, fields)
}

func (l *subscriptionLogger) Trace(msg string, fields watermill.LogFields) {
	l.write(watermill.LevelTrace, msg, fields)
}

// write logs msg at level with the user's names, the fields of every With
// and fields; above debug without watermill-sql's names.
func (l *subscriptionLogger) write(level slog.Level, msg string, fields watermill.LogFields, extra ...slog.Attr) {
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) {
		return
	}
	detail := level <= slog.LevelDebug
	attrs := make([]slog.Attr, 0, 8)
	attrs = append(attrs, slog.String("topic", l.topic), slog.String("group", l.group))
	if l.delayed {
		attrs = append(attrs, slog.Bool("delayed", true))
	}
	seen := map[string]bool{}
	add := func(f watermill.LogFields) {
		for k, v := range f {
			if seen[k] {
				continue // the innermost With wins
			}
			seen[k] = true
			switch k {
			case "topic":
				if detail && l.delayed {
					attrs = append(attrs, slog.Any("table_topic", v))
				}
			case "consumer_group":
			case "subscriber_id":
				if detail {
					attrs = append(attrs, slog.Any(k, v))
				}
			default:
				attrs = append(attrs, slog.Any(k, v))
			}
		}
	}
	add(fields)
	for p := l; p != nil; p = p.parent {
		add(p.fields)
	}
	l.log.LogAttrs(ctx, level, msg, append(attrs, extra...)...)
}
