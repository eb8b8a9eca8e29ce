package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/cqrs/eventstore"
)

// visibleWithin bounds the wait for committed events to become readable
// through ReadAll. Memory and MySQL make them readable at once; PostgreSQL
// as soon as every transaction of the server that might precede them has
// ended, which other clients of a shared server can delay.
const visibleWithin = time.Minute

// NewStore returns a fresh, empty store for one case, reading through u
// (see eventstore.UpcastWith): the upcasters the case registers must apply
// to every read of the store. It should register any cleanup with
// t.Cleanup.
type NewStore func(t *testing.T, u *eventstore.Upcasters) eventstore.Store

// Run runs the contract suite against stores made by newStore, one per
// case. What it requires of a store:
//   - Append stores all events of a call or none, gives them the next
//     versions of their stream, and sets each event's StreamID, Version,
//     Position, RecordedAt and, when empty, ID; ReadStream and ReadAll
//     return the events as appended, metadata and payload byte for byte.
//   - The expected version is checked: NoStream, a version, or Any. A
//     refused append is a *ConflictError with the stream's actual version,
//     matches ErrConflict, and stores nothing. Of concurrent appends with
//     one expected version exactly one wins; concurrent appends with Any
//     all land, each one's events together and in order.
//   - ReadStream reads from a version, up to a version (To), up to a time
//     (Until: the prefix recorded at or before it) and at most Limit
//     events; a stream without events reads as empty.
//   - ReadAll pages through every event once, in increasing Position, each
//     stream's events in version order.
//   - Upcasters given to the store apply on ReadStream and ReadAll, in
//     chains, without rewriting what is stored; an upcaster's error fails
//     the read.
//   - Invalid arguments are refused with eventstore.ErrInvalid, a done
//     context with its error, both without storing anything.
func Run(t *testing.T, newStore NewStore) {
	t.Helper()
	cases := []struct {
		name string
		run  func(t *testing.T, s eventstore.Store, u *eventstore.Upcasters)
	}{
		{"AppendThenReadStream", testAppendThenReadStream},
		{"AppendSetsEventFields", testAppendSetsEventFields},
		{"MissingStreamReadsEmpty", testMissingStreamReadsEmpty},
		{"ExpectedVersionIsChecked", testExpectedVersionIsChecked},
		{"ConcurrentAppendsOneWins", testConcurrentAppendsOneWins},
		{"ConcurrentAnyAppendsAreAtomic", testConcurrentAnyAppendsAreAtomic},
		{"ReadAllPagesInGlobalOrder", testReadAllPagesInGlobalOrder},
		{"ReadStreamBounds", testReadStreamBounds},
		{"ReadStreamAsOfTime", testReadStreamAsOfTime},
		{"MetadataAndPayloadRoundTrip", testMetadataAndPayloadRoundTrip},
		{"UpcastersApplyOnEveryRead", testUpcastersApplyOnEveryRead},
		{"UpcasterErrorFailsTheRead", testUpcasterErrorFailsTheRead},
		{"InvalidArgumentsAreRefused", testInvalidArgumentsAreRefused},
		{"DoneContextIsRefused", testDoneContextIsRefused},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u := eventstore.NewUpcasters()
			c.run(t, newStore(t, u), u)
		})
	}
}

func testAppendThenReadStream(t *testing.T, s eventstore.Store, _ *eventstore.Upcasters) {
	first := events("OrderPlaced", "OrderPaid", "OrderPacked")
	if v := mustAppend(t, s, "order-1", eventstore.NoStream, first); v != 3 {
		t.Fatalf("append of 3 events to a new stream: version %d, want 3", v)
	}
	more := events("OrderShipped", "OrderDelivered")
	if v := mustAppend(t, s, "order-1", 3, more); v != 5 {
		t.Fatalf("append of 2 more: version %d, want 5", v)
	}
	got := mustReadStream(t, s, "order-1", 1, eventstore.ReadOptions{})
	sameEvents(t, "stream order-1", got, append(first, more...))
	sameEvents(t, "stream order-1 from 4", mustReadStream(t, s, "order-1", 4, eventstore.ReadOptions{}), more)
	sameEvents(t, "stream order-1 from 0", mustReadStream(t, s, "order-1", 0, eventstore.ReadOptions{}), got)
	if got := mustReadStream(t, s, "order-1", 6, eventstore.ReadOptions{}); len(got) != 0 {
		t.Fatalf("read from version 6 of a stream at 5: %d events, want none", len(got))
	}
}

func testAppendSetsEventFields(t *testing.T, s eventstore.Store, _ *eventstore.Upcasters) {
	es := events("A", "B", "C")
	es[1].ID = "given-id"
	mustAppend(t, s, "s-1", eventstore.NoStream, es)
	ids := map[string]bool{}
	for i, e := range es {
		if e.StreamID != "s-1" || e.Version != int64(i+1) {
			t.Errorf("event %d after append: stream %q version %d, want s-1 and %d", i, e.StreamID, e.Version, i+1)
		}
		if e.ID == "" || ids[e.ID] {
			t.Errorf("event %d after append: id %q, want a new unique one", i, e.ID)
		}
		ids[e.ID] = true
		if e.RecordedAt.IsZero() {
			t.Errorf("event %d after append: RecordedAt not set", i)
		}
		if i > 0 && !es[i-1].Position.Less(e.Position) {
			t.Errorf("event %d after append: position %v not after %v", i, e.Position, es[i-1].Position)
		}
	}
	if es[1].ID != "given-id" {
		t.Errorf("event with an id: id %q after append, want it kept", es[1].ID)
	}
	sameEvents(t, "stream s-1", mustReadStream(t, s, "s-1", 1, eventstore.ReadOptions{}), es)
	sameEvents(t, "all", readAll(t, s, eventstore.Start, len(es), 100), es)
}

func testMissingStreamReadsEmpty(t *testing.T, s eventstore.Store, _ *eventstore.Upcasters) {
	if got := mustReadStream(t, s, "nobody", 1, eventstore.ReadOptions{}); len(got) != 0 {
		t.Fatalf("read of a missing stream: %d events, want none", len(got))
	}
	got, err := s.ReadAll(t.Context(), eventstore.Start, 10)
	if err != nil || len(got) != 0 {
		t.Fatalf("ReadAll of an empty store: %d events, %v; want none", len(got), err)
	}
}

func testExpectedVersionIsChecked(t *testing.T, s eventstore.Store, _ *eventstore.Upcasters) {
	mustAppend(t, s, "at-2", eventstore.NoStream, events("A", "B"))
	tests := []struct {
		name     string
		stream   string
		expected int64
		actual   int64 // the stream's version before, and after a conflict
		ok       bool
	}{
		{"NoStream on a new stream", "new-1", eventstore.NoStream, 0, true},
		{"NoStream on an existing stream", "at-2", eventstore.NoStream, 2, false},
		{"the current version", "at-2", 2, 2, true},
		{"an older version", "at-2", 1, 3, false},
		{"a later version", "at-2", 7, 3, false},
		{"a version of a missing stream", "new-2", 1, 0, false},
		{"Any on a missing stream", "new-3", eventstore.Any, 0, true},
		{"Any on an existing stream", "at-2", eventstore.Any, 3, true},
	}
	for _, tt := range tests {
		before := len(mustReadStream(t, s, tt.stream, 1, eventstore.ReadOptions{}))
		loser := events("Probe")
		v, err := s.Append(t.Context(), tt.stream, tt.expected, loser)
		after := mustReadStream(t, s, tt.stream, 1, eventstore.ReadOptions{})
		if tt.ok {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			} else if v != int64(before)+1 || len(after) != before+1 {
				t.Errorf("%s: version %d and %d events after, want %d", tt.name, v, len(after), before+1)
			}
			continue
		}
		var ce *eventstore.ConflictError
		switch {
		case !errors.As(err, &ce):
			t.Errorf("%s: got %d, %v; want a *ConflictError", tt.name, v, err)
		case !errors.Is(err, eventstore.ErrConflict):
			t.Errorf("%s: %v does not match ErrConflict", tt.name, err)
		case ce.Stream != tt.stream || ce.Expected != tt.expected || ce.Actual != tt.actual:
			t.Errorf("%s: conflict %+v, want stream %q expected %d actual %d", tt.name, *ce, tt.stream, tt.expected, tt.actual)
		}
		if len(after) != before {
			t.Errorf("%s: refused append changed the stream from %d to %d events", tt.name, before, len(after))
		}
	}
}

func testConcurrentAppendsOneWins(t *testing.T, s eventstore.Store, _ *eventstore.Upcasters) {
	mustAppend(t, s, "contested", eventstore.NoStream, events("Opened"))
	const writers = 16
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		batches = make([][]eventstore.Event, writers)
		errs    = make([]error, writers)
	)
	for i := range writers {
		batches[i] = events("Step", "Step", "Step")
		for j := range batches[i] {
			batches[i][j].Payload = []byte("writer " + strconv.Itoa(i))
		}
		wg.Go(func() {
			<-start
			_, errs[i] = s.Append(t.Context(), "contested", 1, batches[i])
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		var ce *eventstore.ConflictError
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("writers %d and %d both appended at version 1", winner, i)
			}
			winner = i
		case errors.As(err, &ce):
			if ce.Expected != 1 || ce.Actual != 4 {
				t.Errorf("writer %d: conflict %+v, want expected 1, actual 4", i, *ce)
			}
		default:
			t.Errorf("writer %d: %v, want success or a ConflictError", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no writer won")
	}
	got := mustReadStream(t, s, "contested", 2, eventstore.ReadOptions{})
	sameEvents(t, "the winner's events", got, batches[winner])
}

func testConcurrentAnyAppendsAreAtomic(t *testing.T, s eventstore.Store, _ *eventstore.Upcasters) {
	const writers, appends, size = 16, 4, 3
	var wg sync.WaitGroup
	errs := make(chan error, writers*appends)
	for w := range writers {
		wg.Go(func() {
			for a := range appends {
				batch := events("Tick", "Tick", "Tick")
				for j := range batch {
					batch[j].Payload = fmt.Appendf(nil, "%d/%d/%d", w, a, j)
				}
				if _, err := s.Append(t.Context(), "busy", eventstore.Any, batch); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("append with Any: %v", err)
	}
	const total = writers * appends * size
	got := mustReadStream(t, s, "busy", 1, eventstore.ReadOptions{})
	if len(got) != total {
		t.Fatalf("stream has %d events, want %d", len(got), total)
	}
	for i := 0; i < total; i += size {
		w, a, _, err := parseTick(got[i].Payload)
		if err != nil {
			t.Fatal(err)
		}
		for j := range size {
			e := got[i+j]
			if e.Version != int64(i+j+1) {
				t.Fatalf("event %d has version %d", i+j, e.Version)
			}
			if want := fmt.Sprintf("%d/%d/%d", w, a, j); string(e.Payload) != want {
				t.Fatalf("version %d is %q, want %q: an append's events are not together and in order", e.Version, e.Payload, want)
			}
		}
	}
	sameEvents(t, "all", readAll(t, s, eventstore.Start, total, 50), got)
}

func parseTick(p []byte) (w, a, j int, err error) {
	_, err = fmt.Sscanf(string(p), "%d/%d/%d", &w, &a, &j)
	return w, a, j, err
}

func testReadAllPagesInGlobalOrder(t *testing.T, s eventstore.Store, _ *eventstore.Upcasters) {
	var appended []eventstore.Event
	for round := range 4 {
		for _, stream := range []string{"a", "b", "c"} {
			es := events("E", "E")
			for i := range es {
				es[i].Payload = fmt.Appendf(nil, "%s-%d-%d", stream, round, i)
			}
			mustAppend(t, s, stream, eventstore.Any, es)
			appended = append(appended, es...)
		}
	}
	// Appends that committed one after another come in that order.
	for _, limit := range []int{1, 2, 5, 100} {
		sameEvents(t, "ReadAll with limit "+strconv.Itoa(limit), readAll(t, s, eventstore.Start, len(appended), limit), appended)
	}
	mid := appended[6].Position
	sameEvents(t, "ReadAll after the 7th event", readAll(t, s, mid, len(appended)-7, 3), appended[7:])
	last := appended[len(appended)-1].Position
	if got, err := s.ReadAll(t.Context(), last, 10); err != nil || len(got) != 0 {
		t.Fatalf("ReadAll after the last event: %d events, %v; want none", len(got), err)
	}
	for _, limit := range []int{0, -1} {
		if _, err := s.ReadAll(t.Context(), eventstore.Start, limit); !errors.Is(err, eventstore.ErrInvalid) {
			t.Errorf("ReadAll with limit %d: %v, want ErrInvalid", limit, err)
		}
	}
}

func testReadStreamBounds(t *testing.T, s eventstore.Store, _ *eventstore.Upcasters) {
	es := events("A", "B", "C", "D", "E")
	mustAppend(t, s, "s", eventstore.NoStream, es)
	tests := []struct {
		name string
		from int64
		opts eventstore.ReadOptions
		want []eventstore.Event
	}{
		{"to version 3", 1, eventstore.ReadOptions{To: 3}, es[:3]},
		{"versions 2 to 4", 2, eventstore.ReadOptions{To: 4}, es[1:4]},
		{"to a version past the end", 1, eventstore.ReadOptions{To: 9}, es},
		{"to a version before from", 4, eventstore.ReadOptions{To: 3}, nil},
		{"limit 2", 1, eventstore.ReadOptions{Limit: 2}, es[:2]},
		{"limit 2 from 4", 4, eventstore.ReadOptions{Limit: 2}, es[3:]},
		{"limit and to", 2, eventstore.ReadOptions{To: 3, Limit: 5}, es[1:3]},
	}
	for _, tt := range tests {
		sameEvents(t, tt.name, mustReadStream(t, s, "s", tt.from, tt.opts), tt.want)
	}
}

func testReadStreamAsOfTime(t *testing.T, s eventstore.Store, _ *eventstore.Upcasters) {
	var es []eventstore.Event
	for i := range 4 {
		if i > 0 {
			// Let the store's clock move on (its resolution may be a
			// microsecond).
			time.Sleep(2 * time.Millisecond)
		}
		e := events("Step")
		mustAppend(t, s, "timeline", eventstore.Any, e)
		es = append(es, e...)
	}
	for i := 1; i < len(es); i++ {
		if !es[i].RecordedAt.After(es[i-1].RecordedAt) {
			t.Fatalf("event %d recorded at %v, not after event %d at %v", i+1, es[i].RecordedAt, i, es[i-1].RecordedAt)
		}
	}
	tests := []struct {
		name string
		from int64
		opts eventstore.ReadOptions
		want []eventstore.Event
	}{
		{"until the second's time", 1, eventstore.ReadOptions{Until: es[1].RecordedAt}, es[:2]},
		{"until just before the third", 1, eventstore.ReadOptions{Until: es[2].RecordedAt.Add(-time.Microsecond)}, es[:2]},
		{"until before the first", 1, eventstore.ReadOptions{Until: es[0].RecordedAt.Add(-time.Microsecond)}, nil},
		{"until after the last", 1, eventstore.ReadOptions{Until: es[3].RecordedAt.Add(time.Hour)}, es},
		{"from 2 until the third's time", 2, eventstore.ReadOptions{Until: es[2].RecordedAt}, es[1:3]},
		{"until the third's time, to version 2", 1, eventstore.ReadOptions{Until: es[2].RecordedAt, To: 2}, es[:2]},
		{"until in another time zone", 1, eventstore.ReadOptions{Until: es[1].RecordedAt.In(time.FixedZone("UTC+5", 5*3600))}, es[:2]},
	}
	for _, tt := range tests {
		sameEvents(t, tt.name, mustReadStream(t, s, "timeline", tt.from, tt.opts), tt.want)
	}
}

func testMetadataAndPayloadRoundTrip(t *testing.T, s eventstore.Store, _ *eventstore.Upcasters) {
	binary := make([]byte, 256)
	for i := range binary {
		binary[i] = byte(i)
	}
	es := []eventstore.Event{
		{
			ID:          "3f1c9a6e-1b0e-4c55-9a55-0a1f3c2d4e5f",
			Type:        "OrderPlaced.v2",
			ContentType: "application/json",
			Payload:     []byte(`{"id":"o-1","total":42}`),
			Metadata: map[string]string{
				millrace.MetadataCorrelationID: "corr-1",
				millrace.MetadataCausationID:   "cause-1",
				millrace.MetadataPublishedBy:   "orders",
				millrace.MetadataPublishedAt:   "2026-01-02T03:04:05.123456789Z",
				"unicode ключ ✓":               "värde \"quoted\" \\ back\nslash\ttab",
				"empty":                        "",
			},
		},
		{Type: "Blob", ContentType: "application/octet-stream", Payload: binary},
		{Type: "Empty"},
	}
	mustAppend(t, s, "round/trip:ключ", eventstore.NoStream, es)
	got := mustReadStream(t, s, "round/trip:ключ", 1, eventstore.ReadOptions{})
	sameEvents(t, "stream", got, es)
	sameEvents(t, "all", readAll(t, s, eventstore.Start, len(es), 10), es)
	if got[2].Metadata != nil && len(got[2].Metadata) != 0 {
		t.Errorf("event without metadata reads with %v", got[2].Metadata)
	}
}

func testUpcastersApplyOnEveryRead(t *testing.T, s eventstore.Store, u *eventstore.Upcasters) {
	es := []eventstore.Event{
		{Type: "Thing.v1", Payload: []byte("a"), Metadata: map[string]string{"k": "v"}},
		{Type: "Thing.v2", Payload: []byte("b")},
		{Type: "Thing.v3", Payload: []byte("c")},
		{Type: "Other.v1", Payload: []byte("d")},
	}
	mustAppend(t, s, "things", eventstore.NoStream, es)
	// Registered after the append, so that the store holds the old
	// versions, as it does once the code moves on.
	var calls atomic.Int64
	mustRegister(t, u, "Thing.v2", "Thing.v3", func(e eventstore.Event) (eventstore.Event, error) {
		calls.Add(1)
		e.Payload = append(e.Payload, "+v3"...)
		e.Version, e.Type = 99, "ignored" // the registry keeps identity and sets Type
		return e, nil
	})
	mustRegister(t, u, "Thing.v1", "Thing.v2", func(e eventstore.Event) (eventstore.Event, error) {
		calls.Add(1)
		e.Payload = append(e.Payload, "+v2"...)
		e.ContentType = "text/plain"
		return e, nil
	})
	want := []eventstore.Event{es[0], es[1], es[2], es[3]}
	want[0].Type, want[0].Payload, want[0].ContentType = "Thing.v3", []byte("a+v2+v3"), "text/plain"
	want[1].Type, want[1].Payload = "Thing.v3", []byte("b+v3")

	sameEvents(t, "ReadStream", mustReadStream(t, s, "things", 1, eventstore.ReadOptions{}), want)
	sameEvents(t, "ReadStream from 2", mustReadStream(t, s, "things", 2, eventstore.ReadOptions{To: 2}), want[1:2])
	sameEvents(t, "ReadAll", readAll(t, s, eventstore.Start, len(want), 2), want)
	// Each read ran the upcasters on what is stored: the v1 event is still
	// a v1 event (2 steps), the v2 one a v2 event (1 step).
	if n := calls.Load(); n != 3+1+3 {
		t.Errorf("upcasters ran %d times over three reads, want 7: stored events were rewritten or reads skipped them", n)
	}
}

func testUpcasterErrorFailsTheRead(t *testing.T, s eventstore.Store, u *eventstore.Upcasters) {
	mustAppend(t, s, "bad", eventstore.NoStream, []eventstore.Event{{Type: "Fine"}, {Type: "Broken.v1"}})
	boom := errors.New("boom")
	mustRegister(t, u, "Broken.v1", "Broken.v2", func(eventstore.Event) (eventstore.Event, error) { return eventstore.Event{}, boom })
	if _, err := s.ReadStream(t.Context(), "bad", 1, eventstore.ReadOptions{}); !errors.Is(err, boom) {
		t.Errorf("ReadStream: %v, want the upcaster's error", err)
	}
	// ReadAll fails once the broken event is readable.
	var err error
	for deadline := time.Now().Add(visibleWithin); err == nil && time.Now().Before(deadline); {
		if _, err = s.ReadAll(t.Context(), eventstore.Start, 10); err == nil {
			time.Sleep(5 * time.Millisecond)
		}
	}
	if !errors.Is(err, boom) {
		t.Errorf("ReadAll: %v, want the upcaster's error", err)
	}
}

func testInvalidArgumentsAreRefused(t *testing.T, s eventstore.Store, _ *eventstore.Upcasters) {
	long := string(bytes.Repeat([]byte("x"), eventstore.MaxNameLen+1))
	tests := []struct {
		name     string
		stream   string
		expected int64
		events   []eventstore.Event
	}{
		{"empty stream id", "", eventstore.Any, events("A")},
		{"long stream id", long, eventstore.Any, events("A")},
		{"NUL in stream id", "s\x00", eventstore.Any, events("A")},
		{"invalid UTF-8 stream id", "s\xff", eventstore.Any, events("A")},
		{"expected version below Any", "s", -2, events("A")},
		{"no events", "s", eventstore.Any, nil},
		{"event without type", "s", eventstore.Any, []eventstore.Event{{Type: "A"}, {}}},
		{"long type", "s", eventstore.Any, []eventstore.Event{{Type: long}}},
		{"long id", "s", eventstore.Any, []eventstore.Event{{Type: "A", ID: long}}},
		{"NUL in content type", "s", eventstore.Any, []eventstore.Event{{Type: "A", ContentType: "a\x00"}}},
		{"NUL in metadata", "s", eventstore.Any, []eventstore.Event{{Type: "A", Metadata: map[string]string{"k": "v\x00"}}}},
		{"invalid UTF-8 metadata key", "s", eventstore.Any, []eventstore.Event{{Type: "A", Metadata: map[string]string{"\xfe": "v"}}}},
	}
	for _, tt := range tests {
		if _, err := s.Append(t.Context(), tt.stream, tt.expected, tt.events); !errors.Is(err, eventstore.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", tt.name, err)
		}
	}
	for _, stream := range []string{"", long, "s\x00"} {
		if _, err := s.ReadStream(t.Context(), stream, 1, eventstore.ReadOptions{}); !errors.Is(err, eventstore.ErrInvalid) {
			t.Errorf("ReadStream(%.10q): %v, want ErrInvalid", stream, err)
		}
	}
	if got, err := s.ReadAll(t.Context(), eventstore.Start, 10); err != nil || len(got) != 0 {
		t.Errorf("after refused appends: %d events, %v; want none", len(got), err)
	}
}

func testDoneContextIsRefused(t *testing.T, s eventstore.Store, _ *eventstore.Upcasters) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Append(ctx, "s", eventstore.Any, events("A")); !errors.Is(err, context.Canceled) {
		t.Errorf("Append: %v, want context.Canceled", err)
	}
	if _, err := s.ReadStream(ctx, "s", 1, eventstore.ReadOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("ReadStream: %v, want context.Canceled", err)
	}
	if _, err := s.ReadAll(ctx, eventstore.Start, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("ReadAll: %v, want context.Canceled", err)
	}
	if got := mustReadStream(t, s, "s", 1, eventstore.ReadOptions{}); len(got) != 0 {
		t.Errorf("Append with a done context stored %d events", len(got))
	}
}

// events returns one event per type, each with a payload naming it.
func events(types ...string) []eventstore.Event {
	es := make([]eventstore.Event, len(types))
	for i, typ := range types {
		es[i] = eventstore.Event{Type: typ, ContentType: "text/plain", Payload: []byte(typ + " " + strconv.Itoa(i))}
	}
	return es
}

func mustAppend(t *testing.T, s eventstore.Store, stream string, expected int64, es []eventstore.Event) int64 {
	t.Helper()
	v, err := s.Append(t.Context(), stream, expected, es)
	if err != nil {
		t.Fatalf("append %d events to %q at %d: %v", len(es), stream, expected, err)
	}
	return v
}

func mustReadStream(t *testing.T, s eventstore.Store, stream string, from int64, opts eventstore.ReadOptions) []eventstore.Event {
	t.Helper()
	es, err := s.ReadStream(t.Context(), stream, from, opts)
	if err != nil {
		t.Fatalf("read %q from %d: %v", stream, from, err)
	}
	return es
}

func mustRegister(t *testing.T, u *eventstore.Upcasters, from, to string, fn func(eventstore.Event) (eventstore.Event, error)) {
	t.Helper()
	if err := u.Register(from, to, fn); err != nil {
		t.Fatal(err)
	}
}

// readAll pages through s with ReadAll from after, limit events a page,
// until it has n events, waiting for them to become readable. It fails t
// if the positions do not increase.
func readAll(t *testing.T, s eventstore.Store, after eventstore.Position, n, limit int) []eventstore.Event {
	t.Helper()
	var out []eventstore.Event
	deadline := time.Now().Add(visibleWithin)
	for len(out) < n {
		page, err := s.ReadAll(t.Context(), after, limit)
		if err != nil {
			t.Fatalf("ReadAll after %v: %v", after, err)
		}
		if len(page) > limit {
			t.Fatalf("ReadAll with limit %d returned %d events", limit, len(page))
		}
		for _, e := range page {
			if !after.Less(e.Position) {
				t.Fatalf("ReadAll after %v returned an event at %v", after, e.Position)
			}
			after = e.Position
		}
		out = append(out, page...)
		if len(page) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("ReadAll: %d of %d events readable after %v", len(out), n, visibleWithin)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return out
}

// sameEvents fails t unless got are want, field by field. RecordedAt and
// Position are compared only where want has them.
func sameEvents(t *testing.T, what string, got, want []eventstore.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d events, want %d", what, len(got), len(want))
	}
	for i := range got {
		if diff := eventDiff(got[i], want[i]); diff != "" {
			t.Fatalf("%s: event %d: %s", what, i, diff)
		}
	}
}

func eventDiff(g, w eventstore.Event) string {
	switch {
	case g.ID != w.ID:
		return fmt.Sprintf("id %q, want %q", g.ID, w.ID)
	case g.StreamID != w.StreamID:
		return fmt.Sprintf("stream %q, want %q", g.StreamID, w.StreamID)
	case g.Version != w.Version:
		return fmt.Sprintf("version %d, want %d", g.Version, w.Version)
	case w.Position != (eventstore.Position{}) && g.Position != w.Position:
		return fmt.Sprintf("position %v, want %v", g.Position, w.Position)
	case g.Type != w.Type:
		return fmt.Sprintf("type %q, want %q", g.Type, w.Type)
	case g.ContentType != w.ContentType:
		return fmt.Sprintf("content type %q, want %q", g.ContentType, w.ContentType)
	case !bytes.Equal(g.Payload, w.Payload):
		return fmt.Sprintf("payload %q, want %q", g.Payload, w.Payload)
	case !maps.Equal(g.Metadata, w.Metadata):
		return fmt.Sprintf("metadata %v, want %v", g.Metadata, w.Metadata)
	case !w.RecordedAt.IsZero() && !g.RecordedAt.Equal(w.RecordedAt):
		return fmt.Sprintf("recorded at %v, want %v", g.RecordedAt, w.RecordedAt)
	}
	return ""
}
