package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/middleware"
)

// countingHandler counts its runs and returns the errors in errs in turn
// (nil once they run out).
type countingHandler struct {
	runs atomic.Int32
	errs []error
}

func (c *countingHandler) handle(*message.Message) ([]*message.Message, error) {
	n := int(c.runs.Add(1))
	if n <= len(c.errs) {
		return nil, c.errs[n-1]
	}
	return nil, nil
}

// delivery returns a fresh copy of a message with id uuid, consumed in group,
// as a redelivery would be.
func delivery(uuid, group string, payload string, metadata ...string) *message.Message {
	msg := message.NewMessage(uuid, []byte(payload))
	for i := 0; i+1 < len(metadata); i += 2 {
		msg.Metadata.Set(metadata[i], metadata[i+1])
	}
	msg.SetContext(millrace.WithDelivery(context.Background(), &millrace.Delivery{
		Service: "orders", Handler: "handler-of-" + group, Topic: "orders", Group: group,
	}))
	return msg
}

func TestDedup_DuplicateDeliveryHandledOnce(t *testing.T) {
	var h countingHandler
	mw := middleware.Dedup{Store: middleware.NewMemoryStore(100)}.Middleware(h.handle)
	for i := range 3 {
		if _, err := mw(delivery("m-1", "billing", "{}")); err != nil {
			t.Fatalf("delivery %d: %v", i+1, err)
		}
	}
	if got := h.runs.Load(); got != 1 {
		t.Fatalf("handler ran %d times for 3 deliveries of one message, want 1", got)
	}
}

func TestDedup_ConcurrentDuplicatesHandledOnce(t *testing.T) {
	var runs atomic.Int32
	unblock := make(chan struct{})
	h := func(*message.Message) ([]*message.Message, error) {
		runs.Add(1)
		<-unblock // hold the claim until the other delivery has been turned away
		return nil, nil
	}
	mw := middleware.Dedup{Store: middleware.NewMemoryStore(100)}.Middleware(h)

	start := make(chan struct{})
	results := make(chan error, 2)
	for range 2 {
		go func() {
			<-start
			_, err := mw(delivery("m-1", "billing", "{}"))
			results <- err
		}()
	}
	close(start)
	// The delivery that claimed the key is blocked in the handler, so the
	// first result is the other one's.
	first := <-results
	close(unblock)
	second := <-results

	if !errors.Is(first, middleware.ErrDuplicateInFlight) {
		t.Errorf("turned-away delivery: got %v, want ErrDuplicateInFlight", first)
	}
	if !middleware.HeldBack(context.Background(), first) {
		t.Errorf("HeldBack(%v) = false, want true: a duplicate in flight is not a failure", first)
	}
	if second != nil {
		t.Errorf("handling delivery: %v", second)
	}
	if got := runs.Load(); got != 1 {
		t.Fatalf("handler ran %d times, want 1", got)
	}
	// The first delivery's success is recorded: a redelivery is skipped.
	if _, err := mw(delivery("m-1", "billing", "{}")); err != nil {
		t.Fatalf("redelivery: %v", err)
	}
	if got := runs.Load(); got != 1 {
		t.Fatalf("handler ran %d times after redelivery, want 1", got)
	}
}

func TestDedup_FailedHandlerReleasesKey(t *testing.T) {
	boom := errors.New("boom")
	h := countingHandler{errs: []error{boom}}
	mw := middleware.Dedup{Store: middleware.NewMemoryStore(100)}.Middleware(h.handle)

	if _, err := mw(delivery("m-1", "billing", "{}")); !errors.Is(err, boom) {
		t.Fatalf("first delivery: got %v, want the handler's error", err)
	}
	if _, err := mw(delivery("m-1", "billing", "{}")); err != nil {
		t.Fatalf("redelivery after failure: %v", err)
	}
	if _, err := mw(delivery("m-1", "billing", "{}")); err != nil {
		t.Fatalf("redelivery after success: %v", err)
	}
	if got := h.runs.Load(); got != 2 {
		t.Fatalf("handler ran %d times, want 2 (failed, then succeeded; third skipped)", got)
	}
}

func TestDedup_PanickingHandlerReleasesKey(t *testing.T) {
	var runs atomic.Int32
	h := func(*message.Message) ([]*message.Message, error) {
		if runs.Add(1) == 1 {
			panic("boom")
		}
		return nil, nil
	}
	mw := middleware.Dedup{Store: middleware.NewMemoryStore(100)}.Middleware(h)

	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Fatalf("recovered %v, want the handler's panic", r)
			}
		}()
		_, _ = mw(delivery("m-1", "billing", "{}"))
	}()
	if _, err := mw(delivery("m-1", "billing", "{}")); err != nil {
		t.Fatalf("redelivery after panic: %v", err)
	}
	if got := runs.Load(); got != 2 {
		t.Fatalf("handler ran %d times, want 2", got)
	}
}

// downStore fails like an unreachable store.
type downStore struct{}

var errDial = fmt.Errorf("%w: dial tcp 127.0.0.1:1: connection refused", middleware.ErrStoreUnavailable)

func (downStore) Claim(context.Context, string, string, time.Duration) (middleware.ClaimResult, error) {
	return 0, errDial
}
func (downStore) Complete(context.Context, string, string, time.Duration) error { return errDial }
func (downStore) Release(context.Context, string, string) error                 { return errDial }

func TestDedup_StoreDownNacks(t *testing.T) {
	var h countingHandler
	mw := middleware.Dedup{Store: downStore{}}.Middleware(h.handle)
	_, err := mw(delivery("m-1", "billing", "{}"))
	if !errors.Is(err, middleware.ErrStoreUnavailable) {
		t.Fatalf("got %v, want an error wrapping ErrStoreUnavailable", err)
	}
	if !strings.Contains(err.Error(), "m-1") {
		t.Errorf("error %q does not name the message", err)
	}
	if got := h.runs.Load(); got != 0 {
		t.Fatalf("handler ran %d times with the store down, want 0 (fail closed)", got)
	}
}

func TestDedup_StoreDownFailOpenRunsHandler(t *testing.T) {
	var h countingHandler
	mw := middleware.Dedup{Store: downStore{}, FailOpen: true}.Middleware(h.handle)
	for i := range 2 {
		if _, err := mw(delivery("m-1", "billing", "{}")); err != nil {
			t.Fatalf("delivery %d: %v", i+1, err)
		}
	}
	if got := h.runs.Load(); got != 2 {
		t.Fatalf("handler ran %d times, want 2 (fail open: no deduplication)", got)
	}
}

// completeFailsStore claims like a memory store but cannot record done keys.
type completeFailsStore struct{ *middleware.MemoryStore }

func (completeFailsStore) Complete(context.Context, string, string, time.Duration) error {
	return errDial
}

func TestDedup_UnrecordedSuccessStillAcks(t *testing.T) {
	var h countingHandler
	mw := middleware.Dedup{Store: completeFailsStore{middleware.NewMemoryStore(10)}}.Middleware(h.handle)
	if _, err := mw(delivery("m-1", "billing", "{}")); err != nil {
		t.Fatalf("got %v, want nil: the handler succeeded, nacking would run it again", err)
	}
}

func TestDedup_KeyFromMetadataAndJSONField(t *testing.T) {
	tests := []struct {
		name string
		key  func(*message.Message) (string, error)
		// two deliveries with different UUIDs
		first, second *message.Message
		wantRuns      int32
		wantErr       []string // substrings of a permanent error from the first delivery
	}{
		{
			name:     "metadata, same key",
			key:      middleware.KeyFromMetadata("order_id"),
			first:    delivery("m-1", "g", "{}", "order_id", "o-1"),
			second:   delivery("m-2", "g", "{}", "order_id", "o-1"),
			wantRuns: 1,
		},
		{
			name:     "metadata, different keys",
			key:      middleware.KeyFromMetadata("order_id"),
			first:    delivery("m-1", "g", "{}", "order_id", "o-1"),
			second:   delivery("m-2", "g", "{}", "order_id", "o-2"),
			wantRuns: 2,
		},
		{
			name:    "metadata missing",
			key:     middleware.KeyFromMetadata("order_id"),
			first:   delivery("m-1", "g", "{}"),
			wantErr: []string{`"order_id"`, "m-1"},
		},
		{
			name:     "json string field, same key",
			key:      middleware.KeyFromJSONField("order_id"),
			first:    delivery("m-1", "g", `{"a":{"order_id":"x"},"order_id":"o-1"}`),
			second:   delivery("m-2", "g", `{"order_id": "o-1", "b": [1,2]}`),
			wantRuns: 1,
		},
		{
			name:     "json number field, same key",
			key:      middleware.KeyFromJSONField("n"),
			first:    delivery("m-1", "g", `{"n":12345678901234567890}`),
			second:   delivery("m-2", "g", `{"n":12345678901234567890,"x":1}`),
			wantRuns: 1,
		},
		{
			name:     "json field, different keys",
			key:      middleware.KeyFromJSONField("order_id"),
			first:    delivery("m-1", "g", `{"order_id":"o-1"}`),
			second:   delivery("m-2", "g", `{"order_id":"o-2"}`),
			wantRuns: 2,
		},
		{
			name:    "json field missing",
			key:     middleware.KeyFromJSONField("order_id"),
			first:   delivery("m-1", "g", `{"a":{"order_id":"x"}}`),
			wantErr: []string{`"order_id"`, "m-1", "missing"},
		},
		{
			name:    "json field null",
			key:     middleware.KeyFromJSONField("order_id"),
			first:   delivery("m-1", "g", `{"order_id":null}`),
			wantErr: []string{`"order_id"`, "m-1", "null"},
		},
		{
			name:    "json field an object",
			key:     middleware.KeyFromJSONField("order_id"),
			first:   delivery("m-1", "g", `{"order_id":{"id":1}}`),
			wantErr: []string{`"order_id"`, "m-1", "not a string or number"},
		},
		{
			name:    "payload not json",
			key:     middleware.KeyFromJSONField("order_id"),
			first:   delivery("m-1", "g", `order_id=1`),
			wantErr: []string{`"order_id"`, "m-1", "not JSON"},
		},
		{
			name:    "payload a json array",
			key:     middleware.KeyFromJSONField("order_id"),
			first:   delivery("m-1", "g", `[{"order_id":"o-1"}]`),
			wantErr: []string{`"order_id"`, "m-1", "not a JSON object"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h countingHandler
			mw := middleware.Dedup{Store: middleware.NewMemoryStore(100), Key: tt.key}.Middleware(h.handle)
			_, err := mw(tt.first)
			if tt.wantErr != nil {
				if err == nil || !millrace.IsPermanent(err) {
					t.Fatalf("got %v, want a permanent error", err)
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %s", err, s)
					}
				}
				if h.runs.Load() != 0 {
					t.Errorf("handler ran without a key")
				}
				return
			}
			if err != nil {
				t.Fatalf("first delivery: %v", err)
			}
			if _, err := mw(tt.second); err != nil {
				t.Fatalf("second delivery: %v", err)
			}
			if got := h.runs.Load(); got != tt.wantRuns {
				t.Fatalf("handler ran %d times, want %d", got, tt.wantRuns)
			}
		})
	}
}

func TestDedup_KeysNamespacedByGroup(t *testing.T) {
	store := middleware.NewMemoryStore(100)
	var billing, shipping countingHandler
	billingMW := middleware.Dedup{Store: store}.Middleware(billing.handle)
	shippingMW := middleware.Dedup{Store: store}.Middleware(shipping.handle)

	// The handler's name stands in for an empty group.
	var audit countingHandler
	auditMW := middleware.Dedup{Store: store}.Middleware(audit.handle)
	noGroup := func() *message.Message {
		msg := message.NewMessage("m-1", nil)
		msg.SetContext(millrace.WithDelivery(context.Background(), &millrace.Delivery{Handler: "audit"}))
		return msg
	}

	for range 2 {
		for _, d := range []struct {
			mw  message.HandlerFunc
			msg *message.Message
		}{
			{billingMW, delivery("m-1", "billing", "{}")},
			{shippingMW, delivery("m-1", "shipping", "{}")},
			{auditMW, noGroup()},
		} {
			if _, err := d.mw(d.msg); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, h := range map[string]*countingHandler{"billing": &billing, "shipping": &shipping, "audit": &audit} {
		if got := h.runs.Load(); got != 1 {
			t.Errorf("%s handler ran %d times, want once per group", name, got)
		}
	}
}

func TestDedup_ExpiredLeaseLetsDuplicateRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const lease = time.Second
		var runs atomic.Int32
		unblock := make(chan struct{})
		h := func(*message.Message) ([]*message.Message, error) {
			if runs.Add(1) == 1 {
				<-unblock // the first delivery's process hangs
			}
			return nil, nil
		}
		mw := middleware.Dedup{Store: middleware.NewMemoryStore(100), Lease: lease}.Middleware(h)

		go func() { _, _ = mw(delivery("m-1", "billing", "{}")) }()
		synctest.Wait()
		if _, err := mw(delivery("m-1", "billing", "{}")); !errors.Is(err, middleware.ErrDuplicateInFlight) {
			t.Fatalf("within the lease: got %v, want ErrDuplicateInFlight", err)
		}
		time.Sleep(lease)
		if _, err := mw(delivery("m-1", "billing", "{}")); err != nil {
			t.Fatalf("after the lease: %v", err)
		}
		if got := runs.Load(); got != 2 {
			t.Fatalf("handler ran %d times, want 2", got)
		}
		close(unblock)
	})
}

func TestDedup_DoneKeyForgottenAfterTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl = time.Hour
		var h countingHandler
		mw := middleware.Dedup{Store: middleware.NewMemoryStore(100), TTL: ttl}.Middleware(h.handle)
		for _, wait := range []time.Duration{0, ttl - time.Second, time.Second} {
			time.Sleep(wait)
			if _, err := mw(delivery("m-1", "billing", "{}")); err != nil {
				t.Fatal(err)
			}
		}
		if got := h.runs.Load(); got != 2 {
			t.Fatalf("handler ran %d times, want 2 (again once the ttl ran out)", got)
		}
	})
}

func TestDedup_Validate(t *testing.T) {
	tests := []struct {
		name    string
		d       middleware.Dedup
		wantErr []string
	}{
		{"defaults", middleware.Dedup{Store: middleware.NewMemoryStore(1)}, nil},
		{"no store", middleware.Dedup{}, []string{"Store"}},
		{"negative lease", middleware.Dedup{Store: middleware.NewMemoryStore(1), Lease: -1}, []string{"Lease"}},
		{"negative ttl and no store", middleware.Dedup{TTL: -time.Second}, []string{"Store", "TTL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.d.Validate()
			if (err != nil) != (tt.wantErr != nil) {
				t.Fatalf("Validate() = %v, want error: %v", err, tt.wantErr != nil)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not name %s", err, s)
				}
			}
		})
	}
}

func TestDedup_InvalidConfigPanicsInMiddleware(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "Store") {
			t.Fatalf("recovered %v, want a panic naming Store", r)
		}
	}()
	middleware.Dedup{}.Middleware(func(*message.Message) ([]*message.Message, error) { return nil, nil })
}

func BenchmarkDedup_MemoryStore(b *testing.B) {
	nop := func(*message.Message) ([]*message.Message, error) { return nil, nil }
	b.Run("new key", func(b *testing.B) {
		mw := middleware.Dedup{Store: middleware.NewMemoryStore(100_000)}.Middleware(nop)
		ids := make([]string, b.N)
		for i := range ids {
			ids[i] = "m-" + strconv.Itoa(i)
		}
		msg := delivery("", "billing", "{}")
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			msg.UUID = ids[i]
			if _, err := mw(msg); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("duplicate", func(b *testing.B) {
		mw := middleware.Dedup{Store: middleware.NewMemoryStore(100_000)}.Middleware(nop)
		msg := delivery("m-1", "billing", "{}")
		if _, err := mw(msg); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := mw(msg); err != nil {
				b.Fatal(err)
			}
		}
	})
}
