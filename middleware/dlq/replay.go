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

// ReplayReport says what Replay did, in poison-topic order.
type ReplayReport struct {
	// Replayed are the messages published back to their original topics.
	Replayed []Replayed
	// Skipped are matching entries that were not replayed, with the reason.
	Skipped []Skipped
}

// Replayed is one message Replay published.
type Replayed struct {
	ID          string // the message's UUID, unchanged
	Topic       string // the original topic it was published to
	ReplayCount int    // its millrace.MetadataReplayCount now
}

// Skipped is one matching entry Replay did not publish.
type Skipped struct {
	ID     string
	Reason string
}

// Reasons of Skipped.
const (
	SkipNoTopic     = "no original topic (metadata " + millrace.MetadataPoisonTopic + " is missing)"
	SkipPoisonTopic = "original topic is the poison topic itself"
	SkipSuperseded  = "superseded by a later entry of the same message and topic"
)

// Replay publishes every entry of poisonTopic that f matches back to its
// original topic (millrace.MetadataPoisonTopic) with pub, oldest first, and
// reports what it did.
//
// The replayed message keeps the UUID, payload and metadata of the original
// (correlation, partition key, ...), minus every poison_* key and the retry
// keys (millrace.MetadataRetryAttempts, MetadataRetryRounds,
// MetadataFirstFailedAt), so its handler starts afresh; its
// millrace.MetadataReplayCount is one more than before. Keeping the UUID is
// deliberate: consumers can correlate the replay with the failure, the
// handler that failed has no dedup mark for it (dedup marks only successes),
// and the other consumer groups of the topic, which receive the replay too,
// skip it through their dedup marks if they handled it before.
//
// A message set aside several times for one topic (replayed, failed again)
// is replayed once, from its last matching entry; the earlier ones are
// skipped as superseded. Entries without an original topic, or whose
// original topic is poisonTopic, are skipped.
//
// Nothing is removed from the poison topic, so calling Replay again with
// the same filter replays the same messages again. Replay stops at the first
// publish error or when ctx is done, and returns the report so far with the
// error.
func Replay(ctx context.Context, b Browser, pub message.Publisher, poisonTopic string, f Filter) (ReplayReport, error) {
	var report ReplayReport
	msgs, err := browse(ctx, b, poisonTopic)
	if err != nil {
		return report, err
	}

	type target struct{ topic, id string }
	var entries []Entry
	last := make(map[target]int)    // index in entries of the last entry
	replays := make(map[target]int) // highest replay count among them
	for _, m := range msgs {
		if !f.Matches(m) {
			continue
		}
		e := ParseEntry(m)
		entries = append(entries, e)
		k := target{e.Topic, m.UUID}
		last[k] = len(entries) - 1
		replays[k] = max(replays[k], e.ReplayCount)
	}

	for i, e := range entries {
		id := e.Message.UUID
		k := target{e.Topic, id}
		switch {
		case e.Topic == "":
			report.Skipped = append(report.Skipped, Skipped{ID: id, Reason: SkipNoTopic})
			continue
		case e.Topic == poisonTopic:
			report.Skipped = append(report.Skipped, Skipped{ID: id, Reason: SkipPoisonTopic})
			continue
		case last[k] != i:
			report.Skipped = append(report.Skipped, Skipped{ID: id, Reason: SkipSuperseded})
			continue
		}
		if err := ctx.Err(); err != nil {
			return report, fmt.Errorf("dlq: replay stopped before message %s: %w", id, err)
		}
		count := replays[k] + 1
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
