package eventstore

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxNameLen is the longest stream id, event id, type name or content type
// a store accepts, in bytes: what SQL stores index without trouble.
const MaxNameLen = 255

// ErrInvalid is matched by errors.Is for the errors of [CheckAppend] and
// [CheckSnapshot]: arguments no store accepts, refused before anything is
// stored.
var ErrInvalid = errors.New("eventstore: invalid argument")

// CheckAppend returns an error wrapping [ErrInvalid] if no store can take
// an append of events to stream with expected version expected: an empty
// or too long stream id, an expected version below [Any], no events, an
// event without type, or a name (stream id, event id, type, content type)
// longer than [MaxNameLen]. Every string, metadata included, must be valid
// UTF-8 without NUL bytes, which PostgreSQL's text cannot hold. The
// stores of this module call it first; stores written elsewhere should too.
func CheckAppend(stream string, expected int64, events []Event) error {
	if err := checkName("stream id", stream, true); err != nil {
		return err
	}
	if expected < Any {
		return invalid("expected version %d: want Any (-1), NoStream (0) or a version", expected)
	}
	if len(events) == 0 {
		return invalid("append to %q: no events", stream)
	}
	for i := range events {
		e := &events[i]
		if err := checkName("event type", e.Type, true); err != nil {
			return fmt.Errorf("event %d: %w", i, err)
		}
		if err := checkName("event id", e.ID, false); err != nil {
			return fmt.Errorf("event %d: %w", i, err)
		}
		if err := checkName("content type", e.ContentType, false); err != nil {
			return fmt.Errorf("event %d: %w", i, err)
		}
		for k, v := range e.Metadata {
			if !storable(k) || !storable(v) {
				return fmt.Errorf("event %d: %w", i, invalid("metadata %q: key and value must be valid UTF-8 without NUL", k))
			}
		}
	}
	return nil
}

// CheckSnapshot returns an error wrapping [ErrInvalid] if no store can take
// s: an empty or too long stream id, a version below 1, no type, or names
// that are not storable (see [CheckAppend]).
func CheckSnapshot(s Snapshot) error {
	if err := checkName("stream id", s.StreamID, true); err != nil {
		return err
	}
	if s.Version < 1 {
		return invalid("snapshot of %q at version %d: want a version of at least 1", s.StreamID, s.Version)
	}
	if err := checkName("snapshot type", s.Type, true); err != nil {
		return err
	}
	return checkName("content type", s.ContentType, false)
}

// CheckStream returns an error wrapping [ErrInvalid] if stream cannot be a
// stream id; for the read paths.
func CheckStream(stream string) error {
	return checkName("stream id", stream, true)
}

func checkName(what, s string, required bool) error {
	switch {
	case s == "" && required:
		return invalid("%s is empty", what)
	case len(s) > MaxNameLen:
		return invalid("%s %.20q...: longer than %d bytes", what, s, MaxNameLen)
	case !storable(s):
		return invalid("%s %q: not valid UTF-8 or contains NUL", what, s)
	}
	return nil
}

func storable(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}
