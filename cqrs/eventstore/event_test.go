package eventstore_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/millrace/millrace/cqrs/eventstore"
)

func TestPosition_OrdersByTxThenSeq(t *testing.T) {
	ordered := []eventstore.Position{
		eventstore.Start,
		{Seq: 1},
		{Seq: 2},
		{Tx: 1, Seq: 0},
		{Tx: 1, Seq: 7},
		{Tx: 2, Seq: 3},
		{Tx: 1 << 63, Seq: 1},
	}
	for i, p := range ordered {
		for j, q := range ordered {
			if got := p.Less(q); got != (i < j) {
				t.Errorf("%v.Less(%v) = %v", p, q, got)
			}
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := p.Compare(q); got != want {
				t.Errorf("%v.Compare(%v) = %d, want %d", p, q, got, want)
			}
		}
	}
	shuffled := []eventstore.Position{ordered[4], ordered[0], ordered[6], ordered[2], ordered[1], ordered[5], ordered[3]}
	slices.SortFunc(shuffled, eventstore.Position.Compare)
	if !slices.Equal(shuffled, ordered) {
		t.Errorf("sorted: %v, want %v", shuffled, ordered)
	}
}

func TestPosition_TextRoundTrip(t *testing.T) {
	tests := []struct {
		p    eventstore.Position
		text string
	}{
		{eventstore.Start, "0"},
		{eventstore.Position{Seq: 42}, "42"},
		{eventstore.Position{Tx: 57129, Seq: 485}, "57129/485"},
		{eventstore.Position{Tx: 1<<64 - 1, Seq: 1<<63 - 1}, "18446744073709551615/9223372036854775807"},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.text {
			t.Errorf("%#v.String() = %q, want %q", tt.p, got, tt.text)
		}
		got, err := eventstore.ParsePosition(tt.text)
		if err != nil || got != tt.p {
			t.Errorf("ParsePosition(%q) = %v, %v; want %v", tt.text, got, err, tt.p)
		}
		b, err := json.Marshal(struct{ P eventstore.Position }{tt.p})
		if err != nil {
			t.Fatal(err)
		}
		var back struct{ P eventstore.Position }
		if err := json.Unmarshal(b, &back); err != nil || back.P != tt.p {
			t.Errorf("JSON %s read back as %v, %v", b, back.P, err)
		}
	}
	for _, bad := range []string{"", "x", "-1", "+1", "1/", "/1", "1/2/3", "-1/2", "1/-2", "1.5", " 1"} {
		if p, err := eventstore.ParsePosition(bad); err == nil {
			t.Errorf("ParsePosition(%q) = %v, want an error", bad, p)
		}
	}
}

func TestConflictError_SaysWhatWasExpected(t *testing.T) {
	tests := []struct {
		err  eventstore.ConflictError
		want string
	}{
		{eventstore.ConflictError{Stream: "order-1", Expected: 3, Actual: 5}, `eventstore: stream "order-1": expected version 3, actual version 5`},
		{eventstore.ConflictError{Stream: "order-1", Expected: eventstore.NoStream, Actual: 2}, `eventstore: stream "order-1": expected no stream, actual version 2`},
		{eventstore.ConflictError{Stream: "o", Expected: 1, Actual: 0}, `eventstore: stream "o": expected version 1, actual no stream`},
		{eventstore.ConflictError{Stream: "o", Expected: 1, Actual: -1}, `eventstore: stream "o": expected version 1, actual unknown`},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("got %s, want %s", got, tt.want)
		}
	}
}
