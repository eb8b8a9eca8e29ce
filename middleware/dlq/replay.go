package dlq

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
)

// ReplayReport says what [Replay] did, in poison-topic order.
type ReplayReport struct {
	// Replayed are the messages published back to their original topics.
	Replayed []Replayed
	// Skipped are matching dead letters that were not replayed, with the
	// reason.
	Skipped []Skipped
}

// Replayed is one message [Replay] published.
type Replayed struct {
	ID          string // the message's UUID, unchanged
	Topic       string // the original topic it was published to
	ReplayCount int    // its [millrace.MetadataReplayCount] now
}

// Skipped is one matching dead letter [Replay] did not publish.
type Skipped struct {
	ID     string
	Reason string
}

// Reasons of [Skipped].
const (
	SkipNoTopic     = "no original topic (metadata " + millrace.MetadataPoisonTopic + " is missing)"
	SkipPoisonTopic = "original topic is the poison topic itself"
	// SkipSameMessage is the reason for the dead letter of a second handler
	// that failed the same message in the same round: the one publish of
	// the message reaches every consumer group of its topic.
	SkipSameMessage = "replayed once with another handler's dead letter of the same message and topic"
)

// Replay publishes the dead letters of poisonTopic that f matches back to
// their original topics ([millrace.MetadataPoisonTopic]) with pub, in the
// order of the poison topic, and reports what it did.
//
// The dead letters are those [List] returns: a message set aside more than
// once is replayed once, from its latest failure, and f applies to that
// failure. A message that two handlers of its topic failed in the same
// round is published once (a publish reaches every consumer group of the
// topic), at the place of its last matching dead letter; the others are
// skipped with [SkipSameMessage]. Dead letters without an original topic, or
// whose original topic is poisonTopic, are skipped.
//
// The replayed message keeps the UUID, payload and metadata of the original
// (correlation, partition key, ...), minus every poison_* key and the retry
// keys ([millrace.MetadataRetryAttempts], [millrace.MetadataRetryRounds],
// [millrace.MetadataFirstFailedAt]), so its handler starts afresh; its
// [millrace.MetadataReplayCount] is one more than the highest in the poison
// topic for that message and topic. Keeping the UUID is deliberate:
// consumers can correlate the replay with the failure, the handler that
// failed has no dedup mark for it (dedup marks only successes), and the
// other consumer groups of the topic, which receive the replay too, skip it
// through their dedup marks if they handled it before.
//
// Nothing is removed from the poison topic, and a replay that succeeds
// writes nothing to it (see [List]), so calling Replay again with the same
// filter replays the same messages again, including those whose replay
// succeeded; a group whose dedup store still has the message's mark acks
// such a message without running its handler. Scope a repeated replay with
// [Filter.Since], [Filter.IDs] or [Filter.ExcludeIDs]. Replay stops at the
// first publish error or when ctx is done, and returns the report so far
// with the error.
func Replay(ctx context.Context, b Browser, pub message.Publisher, poisonTopic string, f Filter) (ReplayReport, error) {
	var report ReplayReport
	msgs, err := browse(ctx, b, poisonTopic)
	if err != nil {
		return report, err
	}

	var entries []Entry
	last := make(map[msgKey]int) // index in entries of the message's last dead letter
	for _, e := range latest(msgs) {
		if !f.Matches(e.Message) {
			continue
		}
		entries = append(entries, e)
		last[msgKey{e.Topic, e.Message.UUID}] = len(entries) - 1
	}

	for i, e := range entries {
		id := e.Message.UUID
		switch {
		case e.Topic == "":
			report.Skipped = append(report.Skipped, Skipped{ID: id, Reason: SkipNoTopic})
			continue
		case e.Topic == poisonTopic:
			report.Skipped = append(report.Skipped, Skipped{ID: id, Reason: SkipPoisonTopic})
			continue
		case last[msgKey{e.Topic, id}] != i:
			report.Skipped = append(report.Skipped, Skipped{ID: id, Reason: SkipSameMessage})
			continue
		}
		if err := ctx.Err(); err != nil {
			return report, fmt.Errorf("dlq: replay stopped before message %s: %w", id, err)
		}
		// A dead letter is of its message's latest round (see latest), so
		// its replay count is the highest in the poison topic.
		count := e.ReplayCount + 1
		m := replayMessage(e.Message, count)
		m.SetContext(ctx)
		if err := pub.Publish(e.Topic, m); err != nil {
			return report, fmt.Errorf("dlq: replay message %s to topic %q: %w", id, e.Topic, err)
		}
		report.Replayed = append(report.Replayed, Replayed{ID: id, Topic: e.Topic, ReplayCount: count})
	}
	return report, nil
}

// poisonPrefix starts every millrace.MetadataPoison* key; Replay strips
// every key with it, also ones a newer poison queue may add.
const poisonPrefix = "poison_"

// replayMessage returns a copy of m without poison and retry metadata and
// with replay count count.
func replayMessage(m *message.Message, count int) *message.Message {
	out := message.NewMessage(m.UUID, bytes.Clone(m.Payload))
	for k, v := range m.Metadata {
		if strings.HasPrefix(k, poisonPrefix) {
			continue
		}
		switch k {
		case millrace.MetadataRetryAttempts, millrace.MetadataRetryRounds, millrace.MetadataFirstFailedAt:
			continue
		}
		out.Metadata[k] = v
	}
	out.Metadata[millrace.MetadataReplayCount] = strconv.Itoa(count)
	return out
}
