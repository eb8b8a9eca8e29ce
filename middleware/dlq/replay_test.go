package dlq_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/middleware/dlq"
)

func replayedID(r dlq.Replayed) string { return r.ID }

func TestReplay_RoundTrip(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := seed(t, standard...)
		ch, err := b.Subscriber("shop.place-order").Subscribe(t.Context(), "orders.commands")
		if err != nil {
			t.Fatal(err)
		}

		report, err := dlq.Replay(t.Context(), b, b, poisonTopic, dlq.Filter{Handler: "place-order", ErrorContains: "refused"})
		if err != nil {
			t.Fatal(err)
		}
		want := []dlq.Replayed{{ID: "p1", Topic: "orders.commands", ReplayCount: 1}}
		if !slices.Equal(report.Replayed, want) || len(report.Skipped) != 0 {
			t.Fatalf("report = %+v, want %+v replayed and none skipped", report, want)
		}

		var m *message.Message
		select {
		case m = <-ch:
			m.Ack()
		case <-time.After(time.Minute):
			t.Fatal("replayed message not received")
		}
		if m.UUID != "p1" || string(m.Payload) != `{"order_id":"p1"}` {
			t.Errorf("received %s %s, want p1 with its payload", m.UUID, m.Payload)
		}
		for k := range m.Metadata {
			if strings.HasPrefix(k, "poison_") {
				t.Errorf("replayed message still has %s", k)
			}
		}
		for _, k := range []string{millrace.MetadataRetryAttempts, millrace.MetadataRetryRounds, millrace.MetadataFirstFailedAt} {
			if _, ok := m.Metadata[k]; ok {
				t.Errorf("replayed message still has %s", k)
			}
		}
		if got := m.Metadata.Get(millrace.MetadataReplayCount); got != "1" {
			t.Errorf("replay_count = %q, want 1", got)
		}
		if m.Metadata.Get(millrace.MetadataCorrelationID) != "corr-p1" || m.Metadata.Get(millrace.MetadataPartitionKey) != "key-p1" {
			t.Errorf("envelope lost: %v", m.Metadata)
		}

		// The poison topic is a log: the entry is still there.
		if all, _ := dlq.List(t.Context(), b, poisonTopic, dlq.Filter{}); len(all) != len(standard) {
			t.Errorf("poison topic has %d entries after replay, want %d", len(all), len(standard))
		}
	})
}

func TestReplay_Skips(t *testing.T) {
	tests := []struct {
		name        string
		entries     []poisoned
		filter      dlq.Filter
		wantReplay  []dlq.Replayed
		wantSkipped []dlq.Skipped
	}{
		{
			name:        "no original topic",
			entries:     standard,
			filter:      dlq.Filter{Handler: "place-order"},
			wantReplay:  []dlq.Replayed{{ID: "p1", Topic: "orders.commands", ReplayCount: 1}, {ID: "p3", Topic: "orders.commands", ReplayCount: 1}},
			wantSkipped: []dlq.Skipped{{ID: "p4", Reason: dlq.SkipNoTopic}},
		},
		{
			name:        "original topic is the poison topic",
			entries:     []poisoned{{id: "p1", handler: "h", topic: poisonTopic, reason: "r"}},
			wantSkipped: []dlq.Skipped{{ID: "p1", Reason: dlq.SkipPoisonTopic}},
		},
		{
			name: "replayed and failed again: once, from the last entry",
			entries: []poisoned{
				{id: "p1", handler: "h", topic: "orders", reason: "first"},
				{id: "p2", handler: "h", topic: "orders", reason: "other"},
				{id: "p1", handler: "h", topic: "orders", reason: "after replay", replays: 1},
			},
			wantReplay: []dlq.Replayed{{ID: "p2", Topic: "orders", ReplayCount: 1}, {ID: "p1", Topic: "orders", ReplayCount: 2}},
		},
		{
			name: "replayed and failed again: the filter applies to the last failure",
			entries: []poisoned{
				{id: "p1", handler: "h", topic: "orders", reason: "connection refused"},
				{id: "p1", handler: "h", topic: "orders", reason: "decode: bad field", replays: 1},
			},
			filter: dlq.Filter{ErrorContains: "refused"},
		},
		{
			name: "replayed and failed again: a filter on the last failure replays it with the next count",
			entries: []poisoned{
				{id: "p1", handler: "h", topic: "orders", reason: "connection refused", replays: 2},
				{id: "p1", handler: "h", topic: "orders", reason: "connection refused", replays: 1},
				{id: "p1", handler: "h", topic: "orders", reason: "decode: bad field"},
			},
			filter:     dlq.Filter{ErrorContains: "refused"},
			wantReplay: []dlq.Replayed{{ID: "p1", Topic: "orders", ReplayCount: 3}},
		},
		{
			name: "same message failed in two handlers of one topic: one publish reaches both",
			entries: []poisoned{
				{id: "p1", handler: "a", topic: "orders", reason: "r"},
				{id: "p1", handler: "b", topic: "orders", reason: "r"},
			},
			wantReplay:  []dlq.Replayed{{ID: "p1", Topic: "orders", ReplayCount: 1}},
			wantSkipped: []dlq.Skipped{{ID: "p1", Reason: dlq.SkipSameMessage}},
		},
		{
			name: "a handler whose failure a later round answered is not replayed",
			entries: []poisoned{
				{id: "p1", handler: "a", topic: "orders", reason: "r"},
				{id: "p1", handler: "b", topic: "orders", reason: "r"},
				{id: "p1", handler: "b", topic: "orders", reason: "again", replays: 1},
			},
			filter: dlq.Filter{Handler: "a"},
		},
		{
			name:    "scoped by exclude ids",
			entries: standard,
			filter:  dlq.Filter{ExcludeIDs: []string{"p1", "p2", "p4"}},
			wantReplay: []dlq.Replayed{
				{ID: "p3", Topic: "orders.commands", ReplayCount: 1},
				{ID: "p5", Topic: "orders.events", ReplayCount: 1},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := seed(t, tt.entries...)
			report, err := dlq.Replay(t.Context(), b, b, poisonTopic, tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(report.Replayed, tt.wantReplay) {
				t.Errorf("replayed %+v, want %+v", report.Replayed, tt.wantReplay)
			}
			if !slices.Equal(report.Skipped, tt.wantSkipped) {
				t.Errorf("skipped %+v, want %+v", report.Skipped, tt.wantSkipped)
			}
		})
	}
}

func TestReplay_AgainReplaysAgain(t *testing.T) {
	b := seed(t, standard[0])
	for range 2 {
		report, err := dlq.Replay(t.Context(), b, b, poisonTopic, dlq.Filter{})
		if err != nil || !slices.Equal(idsOf(report.Replayed, replayedID), []string{"p1"}) {
			t.Fatalf("Replay = %+v, %v; want p1 replayed", report, err)
		}
	}
	got, err := b.Browse(t.Context(), "orders.commands")
	if err != nil || len(got) != 2 {
		t.Errorf("original topic has %d messages, %v; want 2 (a log cannot record the first replay)", len(got), err)
	}
}

type failingPublisher struct {
	after int // publishes that succeed
	n     int
}

var errPublish = errors.New("broker down")

func (p *failingPublisher) Publish(string, ...*message.Message) error {
	if p.n++; p.n > p.after {
		return errPublish
	}
	return nil
}

func (p *failingPublisher) Close() error { return nil }

func TestReplay_StopsAtFirstPublishError(t *testing.T) {
	b := seed(t, standard...)
	report, err := dlq.Replay(t.Context(), b, &failingPublisher{after: 1}, poisonTopic, dlq.Filter{Handler: "place-order"})
	if !errors.Is(err, errPublish) || !strings.Contains(err.Error(), "p3") {
		t.Errorf("Replay error = %v, want %v naming p3", err, errPublish)
	}
	if got := idsOf(report.Replayed, replayedID); !slices.Equal(got, []string{"p1"}) {
		t.Errorf("report.Replayed = %v, want [p1] (the ones before the error)", got)
	}
}

func TestReplay_StopsWhenContextDone(t *testing.T) {
	b := seed(t, standard...)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := dlq.Replay(ctx, b, b, poisonTopic, dlq.Filter{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Replay = %v, want context.Canceled", err)
	}
}

func TestReplay_EveryPoisonKeyHasPoisonPrefix(t *testing.T) {
	// Replay strips poison metadata by the prefix poison_.
	for _, k := range []string{
		millrace.MetadataPoisonReason, millrace.MetadataPoisonHandler, millrace.MetadataPoisonTopic,
		millrace.MetadataPoisonGroup, millrace.MetadataPoisonService, millrace.MetadataPoisonAttempts,
		millrace.MetadataPoisonFirstFailedAt, millrace.MetadataPoisonLastFailedAt,
	} {
		if !strings.HasPrefix(k, "poison_") {
			t.Errorf("%s does not start with poison_: Replay would keep it", k)
		}
	}
}
