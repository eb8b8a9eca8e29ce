package storetest

import (
	"bytes"
	"errors"
	"testing"

	"github.com/millrace/millrace/cqrs/eventstore"
)

// RunSnapshots runs the contract suite of eventstore.SnapshotStore against
// stores made by newStore, one per case. What it requires:
//   - LoadSnapshot finds what SaveSnapshot saved, payload byte for byte,
//     with TakenAt set, and nothing for a stream without a snapshot.
//   - A snapshot is found only for its own state version: one of another
//     state version is not returned (so it is never decoded as the wrong
//     shape), and snapshots of two state versions of a stream coexist.
//   - A later stream version replaces an earlier one; an earlier one saved
//     after a later one is dropped; the same version replaces.
//   - Invalid snapshots are refused with eventstore.ErrInvalid.
func RunSnapshots(t *testing.T, newStore func(t *testing.T) eventstore.SnapshotStore) {
	t.Helper()
	cases := []struct {
		name string
		run  func(t *testing.T, s eventstore.SnapshotStore)
	}{
		{"SaveThenLoad", testSnapshotSaveThenLoad},
		{"OtherStateVersionIsIgnored", testSnapshotOtherStateVersionIsIgnored},
		{"LaterVersionWins", testSnapshotLaterVersionWins},
		{"InvalidSnapshotsAreRefused", testSnapshotInvalidRefused},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, newStore(t)) })
	}
}

func snapshot(stream string, version int64, stateVersion int, payload string) eventstore.Snapshot {
	return eventstore.Snapshot{
		StreamID: stream, Version: version, StateVersion: stateVersion,
		Type: "Order", ContentType: "application/json", Payload: []byte(payload),
	}
}

func testSnapshotSaveThenLoad(t *testing.T, s eventstore.SnapshotStore) {
	if _, ok := mustLoad(t, s, "order-1", 1); ok {
		t.Fatal("snapshot of a stream without one found")
	}
	binary := make([]byte, 256)
	for i := range binary {
		binary[i] = byte(i)
	}
	want := snapshot("order-1", 40, 1, "")
	want.Payload = binary
	mustSave(t, s, want)
	got, ok := mustLoad(t, s, "order-1", 1)
	if !ok {
		t.Fatal("saved snapshot not found")
	}
	sameSnapshot(t, got, want)
	if got.TakenAt.IsZero() {
		t.Error("TakenAt not set")
	}
	if _, ok := mustLoad(t, s, "order-2", 1); ok {
		t.Error("another stream's snapshot found")
	}
}

func testSnapshotOtherStateVersionIsIgnored(t *testing.T, s eventstore.SnapshotStore) {
	old := snapshot("order-1", 10, 1, `{"total":1}`)
	mustSave(t, s, old)
	if got, ok := mustLoad(t, s, "order-1", 2); ok {
		t.Fatalf("loading state version 2 found a snapshot of state version %d", got.StateVersion)
	}
	current := snapshot("order-1", 8, 2, `{"total_cents":100}`)
	mustSave(t, s, current)
	got, ok := mustLoad(t, s, "order-1", 2)
	if !ok {
		t.Fatal("state version 2 not found")
	}
	sameSnapshot(t, got, current)
	// The older release's snapshot is still there for it.
	got, ok = mustLoad(t, s, "order-1", 1)
	if !ok {
		t.Fatal("state version 1 gone after saving state version 2")
	}
	sameSnapshot(t, got, old)
}

func testSnapshotLaterVersionWins(t *testing.T, s eventstore.SnapshotStore) {
	mustSave(t, s, snapshot("o", 5, 1, "at 5"))
	later := snapshot("o", 10, 1, "at 10")
	mustSave(t, s, later)
	got, _ := mustLoad(t, s, "o", 1)
	sameSnapshot(t, got, later)

	mustSave(t, s, snapshot("o", 7, 1, "at 7, late")) // a slow writer
	got, _ = mustLoad(t, s, "o", 1)
	sameSnapshot(t, got, later)

	again := snapshot("o", 10, 1, "at 10, again")
	mustSave(t, s, again)
	got, _ = mustLoad(t, s, "o", 1)
	sameSnapshot(t, got, again)
}

func testSnapshotInvalidRefused(t *testing.T, s eventstore.SnapshotStore) {
	for name, sn := range map[string]eventstore.Snapshot{
		"no stream":    snapshot("", 1, 1, "x"),
		"version 0":    snapshot("o", 0, 1, "x"),
		"no type":      {StreamID: "o", Version: 1},
		"NUL in type":  {StreamID: "o", Version: 1, Type: "a\x00"},
		"invalid UTF8": snapshot("o\xff", 1, 1, "x"),
	} {
		if err := s.SaveSnapshot(t.Context(), sn); !errors.Is(err, eventstore.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if _, _, err := s.LoadSnapshot(t.Context(), "", 1); !errors.Is(err, eventstore.ErrInvalid) {
		t.Errorf("load of an empty stream id: %v, want ErrInvalid", err)
	}
}

func mustSave(t *testing.T, s eventstore.SnapshotStore, sn eventstore.Snapshot) {
	t.Helper()
	if err := s.SaveSnapshot(t.Context(), sn); err != nil {
		t.Fatalf("save snapshot of %q at %d: %v", sn.StreamID, sn.Version, err)
	}
}

func mustLoad(t *testing.T, s eventstore.SnapshotStore, stream string, stateVersion int) (eventstore.Snapshot, bool) {
	t.Helper()
	sn, ok, err := s.LoadSnapshot(t.Context(), stream, stateVersion)
	if err != nil {
		t.Fatalf("load snapshot of %q: %v", stream, err)
	}
	return sn, ok
}

func sameSnapshot(t *testing.T, got, want eventstore.Snapshot) {
	t.Helper()
	if got.StreamID != want.StreamID || got.Version != want.Version || got.StateVersion != want.StateVersion ||
		got.Type != want.Type || got.ContentType != want.ContentType || !bytes.Equal(got.Payload, want.Payload) {
		t.Fatalf("snapshot %q v%d state %d %s %s %q, want %q v%d state %d %s %s %q",
			got.StreamID, got.Version, got.StateVersion, got.Type, got.ContentType, got.Payload,
			want.StreamID, want.Version, want.StateVersion, want.Type, want.ContentType, want.Payload)
	}
}
