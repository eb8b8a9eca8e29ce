package dlq

import (
	"slices"

	"github.com/ThreeDotsLabs/watermill/message"
)

// The poison topic is a log, and a message can be in it more than once: set
// aside, replayed, set aside again; or set aside by two handlers that both
// consume its topic. latest reduces the log to the dead letters that are
// still current, by two rules:
//
//  1. Replay rounds. A replay publishes the message to its original topic,
//     so every consumer group of that topic receives it. Of the entries of
//     one message (id and original topic), only those of the latest round
//     (the highest replay count) are current: a handler whose entry is of an
//     earlier round received a later replay and did not fail it (or has not
//     finished with it yet), or it would have an entry of the later round
//     too. The replay count is
//     written by the replay itself and copied by the poison queue, so it
//     orders rounds whatever the clocks of the services or the order in
//     which a transport returns the log.
//  2. One entry per consumer. Within a round, a consumer (handler and
//     consumer group) has one current entry, its latest failure: the later
//     poison_last_failed_at, or, when either time is missing or both are
//     equal, the later position in the log. (A consumer can have two
//     entries of one round when at-least-once delivery set a message aside
//     twice, or when two replays of the same round were published.)
//
// What latest cannot see is a success: a handler that handles a replay
// writes nothing to the poison topic, so the entry it failed with stays
// current until a later round supersedes it.

// msgKey identifies a message in the poison topic: what one replay
// publishes.
type msgKey struct{ topic, id string }

// consumerKey identifies a dead letter: a message as one consumer failed it.
type consumerKey struct {
	msgKey
	handler, group string
}

// latest returns the current dead letters of msgs (a poison topic, oldest
// first) as entries, in the order of msgs.
func latest(msgs []*message.Message) []Entry {
	entries := make([]Entry, len(msgs))
	round := make(map[msgKey]int, len(msgs))
	for i, m := range msgs {
		e := ParseEntry(m)
		entries[i] = e
		k := msgKey{e.Topic, m.UUID}
		round[k] = max(round[k], e.ReplayCount)
	}

	current := make(map[consumerKey]int, len(msgs)) // index into entries
	for i, e := range entries {
		mk := msgKey{e.Topic, e.Message.UUID}
		if e.ReplayCount < round[mk] {
			continue
		}
		ck := consumerKey{mk, e.Handler, e.Group}
		if j, ok := current[ck]; !ok || !failedBefore(e, entries[j]) {
			current[ck] = i
		}
	}

	idx := make([]int, 0, len(current))
	for _, i := range current {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	out := make([]Entry, len(idx))
	for n, i := range idx {
		out[n] = entries[i]
	}
	return out
}

// failedBefore reports whether e, which comes after prev in the log, failed
// before it by their last failure times. Without both times, or with equal
// ones, the log's order stands and e is the later.
func failedBefore(e, prev Entry) bool {
	if e.LastFailedAt.IsZero() || prev.LastFailedAt.IsZero() {
		return false
	}
	return e.LastFailedAt.Before(prev.LastFailedAt)
}
