package dlq

import (
	"slices"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
)

// Filter selects poison entries. Every condition that is set must hold; the
// zero Filter matches every message. [List] and [Replay] apply it to each
// dead letter's latest failure, never to the earlier failures of a message
// that was replayed.
type Filter struct {
	// Handler is the failed handler's name (exact match on
	// [millrace.MetadataPoisonHandler]).
	Handler string
	// Topic is the original topic (exact match on
	// [millrace.MetadataPoisonTopic]).
	Topic string
	// ErrorContains is text the failure reason contains, ignoring case.
	ErrorContains string
	// Since and Until bound the last failure
	// ([millrace.MetadataPoisonLastFailedAt]): Since <= last failure < Until.
	// An entry whose last failure time is missing or malformed does not
	// match when either is set.
	Since, Until time.Time
	// IDs, if not empty, are the only message ids that match.
	IDs []string
	// ExcludeIDs are message ids that never match, for example the ones a
	// previous replay sent back already.
	ExcludeIDs []string
}

// IsZero reports whether f sets no condition and so matches everything.
func (f Filter) IsZero() bool {
	return f.Handler == "" && f.Topic == "" && f.ErrorContains == "" &&
		f.Since.IsZero() && f.Until.IsZero() && len(f.IDs) == 0 && len(f.ExcludeIDs) == 0
}

// Matches reports whether m, a message of the poison topic, meets every
// condition of f. It looks at m alone; that m is a message's latest failure
// is for the caller to know (see [List]).
func (f Filter) Matches(m *message.Message) bool {
	md := m.Metadata
	switch {
	case f.Handler != "" && md.Get(millrace.MetadataPoisonHandler) != f.Handler,
		f.Topic != "" && md.Get(millrace.MetadataPoisonTopic) != f.Topic,
		f.ErrorContains != "" && !containsFold(md.Get(millrace.MetadataPoisonReason), f.ErrorContains),
		len(f.IDs) > 0 && !slices.Contains(f.IDs, m.UUID),
		slices.Contains(f.ExcludeIDs, m.UUID):
		return false
	}
	if f.Since.IsZero() && f.Until.IsZero() {
		return true
	}
	last := parseTime(md.Get(millrace.MetadataPoisonLastFailedAt))
	switch {
	case last.IsZero(),
		!f.Since.IsZero() && last.Before(f.Since),
		!f.Until.IsZero() && !last.Before(f.Until):
		return false
	}
	return true
}

func containsFold(s, substr string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(substr))
}
