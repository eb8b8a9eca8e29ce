package dlq_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/middleware/dlq"
	"github.com/millrace/millrace/transports/memory"
)

var _ dlq.Browser = (*memory.Broker)(nil)

func entryID(e dlq.Entry) string { return e.Message.UUID }

func TestList_Filters(t *testing.T) {
	tests := []struct {
		name   string
		filter dlq.Filter
		want   []string
	}{
		{name: "zero filter matches all", want: []string{"p1", "p2", "p3", "p4", "p5"}},
		{name: "handler", filter: dlq.Filter{Handler: "place-order"}, want: []string{"p1", "p3", "p4"}},
		{name: "topic", filter: dlq.Filter{Topic: "orders.events"}, want: []string{"p2", "p5"}},
		{name: "error text ignores case", filter: dlq.Filter{ErrorContains: "smtp"}, want: []string{"p2"}},
		{name: "since is inclusive", filter: dlq.Filter{Since: t0.Add(2 * time.Minute)}, want: []string{"p2", "p3", "p4"}},
		{name: "until is exclusive", filter: dlq.Filter{Until: t0.Add(2 * time.Minute)}, want: []string{"p1"}},
		{name: "since and until", filter: dlq.Filter{Since: t0.Add(2 * time.Minute), Until: t0.Add(4 * time.Minute)}, want: []string{"p2", "p3"}},
		{name: "ids", filter: dlq.Filter{IDs: []string{"p3", "p1", "nope"}}, want: []string{"p1", "p3"}},
		{name: "exclude ids", filter: dlq.Filter{ExcludeIDs: []string{"p1", "p2"}}, want: []string{"p3", "p4", "p5"}},
		{name: "all conditions hold", filter: dlq.Filter{Handler: "place-order", ErrorContains: "refused", Topic: "orders.commands"}, want: []string{"p1"}},
		{name: "nothing matches", filter: dlq.Filter{Handler: "ship"}, want: []string{}},
	}
	b := seed(t, standard...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := dlq.List(t.Context(), b, poisonTopic, tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			if ids := idsOf(got, entryID); !slices.Equal(ids, tt.want) {
				t.Errorf("List = %v, want %v", ids, tt.want)
			}
		})
	}
	// Listing consumed nothing.
	if all, err := dlq.List(t.Context(), b, poisonTopic, dlq.Filter{}); err != nil || len(all) != len(standard) {
		t.Errorf("after listing: %d entries, %v; want %d", len(all), err, len(standard))
	}
}

func TestList_ParsesPoisonMetadata(t *testing.T) {
	p := poisoned{id: "p1", handler: "place-order", topic: "orders.commands", reason: "connection refused", lastFailed: t0.Add(time.Minute + time.Millisecond), replays: 2}
	b := seed(t, p)
	got, err := dlq.List(t.Context(), b, poisonTopic, dlq.Filter{})
	if err != nil || len(got) != 1 {
		t.Fatalf("List = %v, %v; want one entry", got, err)
	}
	e := got[0]
	want := dlq.Entry{
		Message: e.Message, Reason: "connection refused", Handler: "place-order", Topic: "orders.commands",
		Group: "shop.place-order", Service: "shop", Attempts: 5,
		FirstFailedAt: t0, LastFailedAt: t0.Add(time.Minute + time.Millisecond), ReplayCount: 2,
	}
	if e.Message.UUID != "p1" || !e.FirstFailedAt.Equal(want.FirstFailedAt) || !e.LastFailedAt.Equal(want.LastFailedAt) {
		t.Errorf("entry %s first=%v last=%v, want p1 %v %v", e.Message.UUID, e.FirstFailedAt, e.LastFailedAt, want.FirstFailedAt, want.LastFailedAt)
	}
	e.FirstFailedAt, e.LastFailedAt, want.FirstFailedAt, want.LastFailedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if e != want {
		t.Errorf("entry = %+v, want %+v", e, want)
	}
}

func TestParseEntry_MalformedMetadataIsZero(t *testing.T) {
	m := message.NewMessage("x", nil)
	m.Metadata.Set(millrace.MetadataPoisonAttempts, "many")
	m.Metadata.Set(millrace.MetadataPoisonLastFailedAt, "yesterday")
	m.Metadata.Set(millrace.MetadataReplayCount, "-1")
	e := dlq.ParseEntry(m)
	if e.Attempts != 0 || !e.LastFailedAt.IsZero() || e.ReplayCount != 0 {
		t.Errorf("entry = %+v, want zero attempts, time and replay count", e)
	}
}

type failingBrowser struct{ err error }

func (f failingBrowser) Browse(context.Context, string) ([]*message.Message, error) {
	return nil, f.err
}

func TestList_Errors(t *testing.T) {
	boom := errors.New("boom")
	if _, err := dlq.List(t.Context(), failingBrowser{boom}, poisonTopic, dlq.Filter{}); !errors.Is(err, boom) || !strings.Contains(err.Error(), poisonTopic) {
		t.Errorf("List = %v, want boom naming the topic", err)
	}
	if _, err := dlq.List(t.Context(), failingBrowser{}, "", dlq.Filter{}); err == nil {
		t.Error("List with empty poison topic: no error")
	}
}

func TestFilter_IsZero(t *testing.T) {
	if !(dlq.Filter{}).IsZero() {
		t.Error("zero Filter: IsZero false")
	}
	if (dlq.Filter{ExcludeIDs: []string{"x"}}).IsZero() {
		t.Error("Filter with ExcludeIDs: IsZero true")
	}
}
