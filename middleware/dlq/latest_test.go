package dlq_test

import (
	"slices"
	"testing"
	"time"

	"github.com/millrace/millrace/middleware/dlq"
)

// failure names an entry by what tells copies of one message apart.
func failure(e dlq.Entry) string { return e.Message.UUID + " " + e.Handler + ": " + e.Reason }

func TestList_OnceWithLatestFailure(t *testing.T) {
	at := func(minutes int) time.Time { return t0.Add(time.Duration(minutes) * time.Minute) }
	tests := []struct {
		name    string
		entries []poisoned
		filter  dlq.Filter
		want    []string
	}{
		{
			name: "replayed and failed again: once, the latest, in its place",
			entries: []poisoned{
				{id: "p1", handler: "h", topic: "orders", reason: "first", lastFailed: at(1)},
				{id: "p2", handler: "h", topic: "orders", reason: "other", lastFailed: at(2)},
				{id: "p1", handler: "h", topic: "orders", reason: "after replay", lastFailed: at(3), replays: 1},
			},
			want: []string{"p2 h: other", "p1 h: after replay"},
		},
		{
			name: "replay count wins over failure time and position",
			entries: []poisoned{
				{id: "p1", handler: "h", topic: "orders", reason: "round 2", lastFailed: at(3), replays: 2},
				{id: "p1", handler: "h", topic: "orders", reason: "round 1", lastFailed: at(9), replays: 1},
				{id: "p1", handler: "h", topic: "orders", reason: "round 0", lastFailed: at(10)},
			},
			want: []string{"p1 h: round 2"},
		},
		{
			name: "same round: the later failure time wins over position",
			entries: []poisoned{
				{id: "p1", handler: "h", topic: "orders", reason: "later", lastFailed: at(5)},
				{id: "p1", handler: "h", topic: "orders", reason: "earlier", lastFailed: at(2)},
			},
			want: []string{"p1 h: later"},
		},
		{
			name: "same round without failure times: the later position",
			entries: []poisoned{
				{id: "p1", handler: "h", topic: "orders", reason: "first"},
				{id: "p1", handler: "h", topic: "orders", reason: "second", lastFailed: at(1)},
				{id: "p1", handler: "h", topic: "orders", reason: "third"},
			},
			want: []string{"p1 h: third"},
		},
		{
			name: "two handlers failed it in one round: one dead letter each",
			entries: []poisoned{
				{id: "p1", handler: "a", topic: "orders", reason: "a failed", lastFailed: at(1)},
				{id: "p1", handler: "b", topic: "orders", reason: "b failed", lastFailed: at(2)},
			},
			want: []string{"p1 a: a failed", "p1 b: b failed"},
		},
		{
			name: "a later round supersedes another handler's earlier one",
			entries: []poisoned{
				{id: "p1", handler: "a", topic: "orders", reason: "a failed", lastFailed: at(1)},
				{id: "p1", handler: "b", topic: "orders", reason: "b failed", lastFailed: at(2)},
				{id: "p1", handler: "b", topic: "orders", reason: "b failed again", lastFailed: at(3), replays: 1},
			},
			want: []string{"p1 b: b failed again"},
		},
		{
			name: "the same id on another topic is another message",
			entries: []poisoned{
				{id: "p1", handler: "h", topic: "orders", reason: "orders", lastFailed: at(1)},
				{id: "p1", handler: "h", topic: "invoices", reason: "invoices", lastFailed: at(2), replays: 1},
			},
			want: []string{"p1 h: orders", "p1 h: invoices"},
		},
		{
			name: "error filter applies to the latest failure only",
			entries: []poisoned{
				{id: "p1", handler: "h", topic: "orders", reason: "connection refused", lastFailed: at(1)},
				{id: "p1", handler: "h", topic: "orders", reason: "decode: bad field", lastFailed: at(3), replays: 1},
			},
			filter: dlq.Filter{ErrorContains: "refused"},
			want:   []string{},
		},
		{
			name: "since matches the latest failure",
			entries: []poisoned{
				{id: "p1", handler: "h", topic: "orders", reason: "first", lastFailed: at(1)},
				{id: "p1", handler: "h", topic: "orders", reason: "after replay", lastFailed: at(3), replays: 1},
			},
			filter: dlq.Filter{Since: at(2)},
			want:   []string{"p1 h: after replay"},
		},
		{
			name: "until does not match an earlier failure",
			entries: []poisoned{
				{id: "p1", handler: "h", topic: "orders", reason: "first", lastFailed: at(1)},
				{id: "p1", handler: "h", topic: "orders", reason: "after replay", lastFailed: at(3), replays: 1},
			},
			filter: dlq.Filter{Until: at(2)},
			want:   []string{},
		},
		{
			name: "handler filter: a handler whose failure a later round answered",
			entries: []poisoned{
				{id: "p1", handler: "a", topic: "orders", reason: "a failed", lastFailed: at(1)},
				{id: "p1", handler: "b", topic: "orders", reason: "b failed again", lastFailed: at(3), replays: 1},
			},
			filter: dlq.Filter{Handler: "a"},
			want:   []string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := seed(t, tt.entries...)
			got, err := dlq.List(t.Context(), b, poisonTopic, tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			if ids := idsOf(got, failure); !slices.Equal(ids, tt.want) {
				t.Errorf("List = %q, want %q", ids, tt.want)
			}
		})
	}
}

// TestList_ReplayThatSucceededIsStillListed pins down what List cannot
// know: a replay that succeeds writes nothing to the poison topic, so the
// failure from before it stays listed.
func TestList_ReplayThatSucceededIsStillListed(t *testing.T) {
	b := seed(t, standard[0])
	if _, err := dlq.Replay(t.Context(), b, b, poisonTopic, dlq.Filter{}); err != nil {
		t.Fatal(err)
	}
	// The replay is in orders.commands; a handler would now handle it and
	// write nothing to the poison topic.
	got, err := dlq.List(t.Context(), b, poisonTopic, dlq.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Message.UUID != "p1" || got[0].ReplayCount != 0 {
		t.Errorf("List = %q, want p1 with its failure from before the replay", idsOf(got, failure))
	}
}
