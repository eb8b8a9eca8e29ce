package dlq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
)

// Browser reads a topic as a log: Browse returns copies of the topic's
// messages, oldest first, without consuming or removing them. The memory
// transport's Broker (and the Transport it is opened as) implements it, as
// do the Kafka and SQL transports and the AMQP transport's retained topics.
// [List] and [Replay] use the order only to break ties (see [List]), so a
// transport that merges partitions by time (Kafka) is read correctly.
type Browser interface {
	Browse(ctx context.Context, topic string) ([]*message.Message, error)
}

// Entry is one message of the poison topic with its poison metadata parsed:
// as [List] returns it, a dead letter at its latest failure. Fields whose
// metadata is missing or malformed are zero: an entry is never rejected for
// its metadata, so an operator sees every dead letter.
type Entry struct {
	// Message is the message as it is in the poison topic (a copy).
	Message *message.Message

	Reason  string // [millrace.MetadataPoisonReason]: the last error's text
	Handler string // [millrace.MetadataPoisonHandler]
	Topic   string // [millrace.MetadataPoisonTopic]: where a replay sends it
	Group   string // [millrace.MetadataPoisonGroup]
	Service string // [millrace.MetadataPoisonService]

	// Attempts is how many times the handler tried it
	// ([millrace.MetadataPoisonAttempts]).
	Attempts int
	// FirstFailedAt and LastFailedAt bound its failures
	// ([millrace.MetadataPoisonFirstFailedAt],
	// [millrace.MetadataPoisonLastFailedAt]).
	FirstFailedAt, LastFailedAt time.Time
	// ReplayCount is how many times it had been replayed before it was set
	// aside this time ([millrace.MetadataReplayCount]).
	ReplayCount int
}

// ParseEntry reads m's poison metadata. It keeps m itself as [Entry.Message].
func ParseEntry(m *message.Message) Entry {
	md := m.Metadata
	return Entry{
		Message:       m,
		Reason:        md.Get(millrace.MetadataPoisonReason),
		Handler:       md.Get(millrace.MetadataPoisonHandler),
		Topic:         md.Get(millrace.MetadataPoisonTopic),
		Group:         md.Get(millrace.MetadataPoisonGroup),
		Service:       md.Get(millrace.MetadataPoisonService),
		Attempts:      parseInt(md.Get(millrace.MetadataPoisonAttempts)),
		FirstFailedAt: parseTime(md.Get(millrace.MetadataPoisonFirstFailedAt)),
		LastFailedAt:  parseTime(md.Get(millrace.MetadataPoisonLastFailedAt)),
		ReplayCount:   parseInt(md.Get(millrace.MetadataReplayCount)),
	}
}

// parseInt returns s as a number, 0 if it is not a non-negative one.
func parseInt(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// parseTime returns s (RFC 3339, fractional seconds allowed) as a time, the
// zero time if it is not one.
func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

var errNoPoisonTopic = errors.New("dlq: poison topic must not be empty")

// List returns the dead letters of poisonTopic that f matches, in the
// order of the poison topic. It removes nothing.
//
// A message set aside more than once (replayed and failed again) is listed
// once, with its latest failure, and f is applied to that one: a message
// whose latest failure is older than [Filter.Since], or whose latest reason
// no longer contains [Filter.ErrorContains], is not listed even if an
// earlier failure would match. Latest means, in this order: the highest
// replay count ([millrace.MetadataReplayCount]; an entry of an earlier
// replay round was answered by the later replay, which every consumer group
// of the topic received), then the later
// [millrace.MetadataPoisonLastFailedAt], then the later position in the
// poison topic. A message is its id and original topic. Two handlers that
// both failed a message in the same round are two dead letters of the same
// id, one per handler; [Replay] publishes such a message once.
//
// A success leaves nothing in the poison topic, so a message whose replay
// then succeeded is still listed, with its failure from before the replay,
// until it fails again in a later round; nothing in the poison topic tells
// it from a replay that has not been handled yet. Its [Entry.ReplayCount]
// is the replays it had before that failure, not the ones since.
func List(ctx context.Context, b Browser, poisonTopic string, f Filter) ([]Entry, error) {
	msgs, err := browse(ctx, b, poisonTopic)
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, e := range latest(msgs) {
		if f.Matches(e.Message) {
			out = append(out, e)
		}
	}
	return out, nil
}

func browse(ctx context.Context, b Browser, poisonTopic string) ([]*message.Message, error) {
	if poisonTopic == "" {
		return nil, errNoPoisonTopic
	}
	msgs, err := b.Browse(ctx, poisonTopic)
	if err != nil {
		return nil, fmt.Errorf("dlq: browse poison topic %q: %w", poisonTopic, err)
	}
	return msgs, nil
}
