package eventstore_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/millrace/millrace/cqrs/eventstore"
	"github.com/millrace/millrace/framework"
)

func appendTo(suffix string) func(eventstore.Event) (eventstore.Event, error) {
	return func(e eventstore.Event) (eventstore.Event, error) {
		e.Payload = append(e.Payload, suffix...)
		return e, nil
	}
}

func TestUpcasters_ApplyChainsToTheEnd(t *testing.T) {
	u := eventstore.NewUpcasters()
	// Registered out of order: a chain is followed whatever the order.
	for _, step := range [][2]string{{"X.v2", "X.v3"}, {"X.v1", "X.v2"}, {"X.v3", "X.v4"}} {
		if err := u.Register(step[0], step[1], appendTo(">"+step[1])); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct{ typ, wantType, wantPayload string }{
		{"X.v1", "X.v4", "p>X.v2>X.v3>X.v4"},
		{"X.v2", "X.v4", "p>X.v3>X.v4"},
		{"X.v4", "X.v4", "p"},
		{"Y.v1", "Y.v1", "p"},
	}
	for _, tt := range tests {
		in := eventstore.Event{ID: "id", StreamID: "s", Version: 3, Position: eventstore.Position{Seq: 9}, Type: tt.typ, Payload: []byte("p")}
		got, err := u.Upcast(in)
		if err != nil {
			t.Fatal(err)
		}
		if got.Type != tt.wantType || string(got.Payload) != tt.wantPayload {
			t.Errorf("%s: upcast to %s %q, want %s %q", tt.typ, got.Type, got.Payload, tt.wantType, tt.wantPayload)
		}
		if got.ID != in.ID || got.StreamID != in.StreamID || got.Version != in.Version || got.Position != in.Position {
			t.Errorf("%s: identity changed: %+v", tt.typ, got)
		}
		if l := u.Latest(tt.typ); l != tt.wantType {
			t.Errorf("Latest(%s) = %s, want %s", tt.typ, l, tt.wantType)
		}
	}
}

func TestUpcasters_RegisterRefusesDuplicatesCyclesAndNonsense(t *testing.T) {
	u := eventstore.NewUpcasters()
	ok := appendTo("")
	for _, step := range [][2]string{{"A.v1", "A.v2"}, {"A.v2", "A.v3"}} {
		if err := u.Register(step[0], step[1], ok); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, from, to string
		fn             func(eventstore.Event) (eventstore.Event, error)
		want           string
	}{
		{"duplicate", "A.v1", "A.v9", ok, "already upcasts to A.v2"},
		{"cycle of two", "A.v3", "A.v2", ok, "cycle"},
		{"cycle of three", "A.v3", "A.v1", ok, "cycle"},
		{"to itself", "B", "B", ok, "to itself"},
		{"empty from", "", "B", ok, "empty"},
		{"empty to", "B", "", ok, "empty"},
		{"nil function", "B", "C", nil, "nil"},
	}
	for _, tt := range tests {
		err := u.Register(tt.from, tt.to, tt.fn)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error about %q", tt.name, err, tt.want)
		}
	}
	// The refused registrations changed nothing.
	if l := u.Latest("A.v1"); l != "A.v3" {
		t.Errorf("Latest(A.v1) = %s, want A.v3", l)
	}
	// A chain may join another one's end.
	if err := u.Register("A.v3", "A.v4", ok); err != nil {
		t.Errorf("extending the chain: %v", err)
	}
}

func TestUpcasters_ErrorNamesTheEvent(t *testing.T) {
	u := eventstore.NewUpcasters()
	boom := errors.New("boom")
	if err := u.Register("A.v1", "A.v2", func(eventstore.Event) (eventstore.Event, error) { return eventstore.Event{}, boom }); err != nil {
		t.Fatal(err)
	}
	_, err := u.Upcast(eventstore.Event{ID: "e-1", StreamID: "s-1", Version: 4, Type: "A.v1"})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), `e-1 (stream "s-1", version 4) from A.v1 to A.v2`) {
		t.Errorf("got %v", err)
	}
	var nilU *eventstore.Upcasters
	if e, err := nilU.Upcast(eventstore.Event{Type: "A.v1"}); err != nil || e.Type != "A.v1" {
		t.Errorf("nil Upcasters: %v, %v", e, err)
	}
}

type placedV1 struct {
	Total int `json:"total"`
}

func (placedV1) MessageType() string { return "OrderPlaced" }
func (placedV1) MessageVersion() int { return 1 }

type placedV2 struct {
	TotalCents int    `json:"total_cents"`
	Currency   string `json:"currency"`
}

func (placedV2) MessageType() string { return "OrderPlaced" }
func (placedV2) MessageVersion() int { return 2 }

func TestUpcast_DecodesConvertsAndEncodesWithTheCodec(t *testing.T) {
	u := eventstore.NewUpcasters()
	err := eventstore.Upcast(u, framework.JSON{}, func(v placedV1) (placedV2, error) {
		return placedV2{TotalCents: v.Total * 100, Currency: "EUR"}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	old, err := eventstore.NewEvent(framework.JSON{}, placedV1{Total: 42}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if old.Type != "OrderPlaced.v1" || old.ContentType != "application/json" {
		t.Fatalf("NewEvent: type %s, content type %s", old.Type, old.ContentType)
	}
	up, err := u.Upcast(old)
	if err != nil {
		t.Fatal(err)
	}
	var v2 placedV2
	if err := eventstore.Decode(framework.JSON{}, up, &v2); err != nil {
		t.Fatal(err)
	}
	if v2 != (placedV2{TotalCents: 4200, Currency: "EUR"}) {
		t.Errorf("upcast to %+v", v2)
	}
	// Decoding the old event as the new type is refused, not guessed.
	if err := eventstore.Decode(framework.JSON{}, old, &v2); err == nil || !strings.Contains(err.Error(), "it is a OrderPlaced.v1, not a OrderPlaced.v2") {
		t.Errorf("Decode of a v1 event as v2: %v", err)
	}
	bad := old
	bad.Payload = []byte("{")
	if _, err := u.Upcast(bad); err == nil || !strings.Contains(err.Error(), "decode OrderPlaced.v1") {
		t.Errorf("upcast of a bad payload: %v", err)
	}
}
