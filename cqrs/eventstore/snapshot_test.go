package eventstore_test

import (
	"strings"
	"testing"

	"github.com/millrace/millrace/cqrs/eventstore"
)

func TestSnapshotPolicy_DueWhenAnAppendReachesAMultiple(t *testing.T) {
	p := eventstore.SnapshotPolicy{Every: 10, PerType: map[string]int{"Cart": 3, "Log": 0}}
	tests := []struct {
		typ      string
		from, to int64
		want     bool
	}{
		{"Order", 0, 9, false},
		{"Order", 0, 10, true},
		{"Order", 9, 10, true},
		{"Order", 10, 11, false},
		{"Order", 8, 25, true}, // crosses two multiples: one snapshot
		{"Order", 11, 19, false},
		{"Order", 10, 10, false},
		{"Cart", 2, 3, true},
		{"Cart", 3, 5, false},
		{"Cart", 5, 6, true},
		{"Log", 0, 100, false},
	}
	for _, tt := range tests {
		if got := p.Due(tt.typ, tt.from, tt.to); got != tt.want {
			t.Errorf("Due(%s, %d, %d) = %v, want %v", tt.typ, tt.from, tt.to, got, tt.want)
		}
	}
	if (eventstore.SnapshotPolicy{}).Due("Order", 0, 1000) {
		t.Error("the zero policy takes snapshots")
	}
}

func TestSnapshotPolicy_ValidateNamesEachBadKey(t *testing.T) {
	if err := (eventstore.SnapshotPolicy{Every: 100, PerType: map[string]int{"A": 0}}).Validate(); err != nil {
		t.Fatal(err)
	}
	err := eventstore.SnapshotPolicy{Every: -1, PerType: map[string]int{"B": -2, "A": -3, "C": 5}}.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{`"every": value "-1"`, `"per_type.A": value "-3"`, `"per_type.B": value "-2"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("%s: missing %s", msg, want)
		}
	}
	if strings.Index(msg, "per_type.A") > strings.Index(msg, "per_type.B") {
		t.Errorf("keys not in order: %s", msg)
	}
}
