package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
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

// newDedup returns deduplication over store configured by cfg.
func newDedup(t testing.TB, cfg middleware.DedupConfig, store middleware.DedupStore, opts ...middleware.Option) *middleware.Dedup {
	t.Helper()
	d, err := middleware.NewDedup(cfg, store, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// dedupOver returns h wrapped with deduplication over store, configured by
// DefaultDedupConfig.
func dedupOver(t testing.TB, store middleware.DedupStore, h message.HandlerFunc, opts ...middleware.Option) message.HandlerFunc {
	t.Helper()
	return newDedup(t, middleware.DefaultDedupConfig(), store, opts...).Middleware(h)
}

// delivery returns a fresh copy of a message with id uuid, consumed in group,
// as a redelivery would be.
func delivery(uuid, group string, payload string, metadata ...string) *message.Message {
	msg := message.NewMessage(uuid, []byte(payload))
	for i := 0; i+1 < len(metadata); i += 2 {
		msg.Metadata.Set(metadata[i], metadata[i+1])
	}
	msg.SetContext(millrace.WithConsumer(context.Background(), &millrace.Consumer{
		Service: "orders", Handler: "handler-of-" + group, Topic: "orders", Group: group,
	}))
	return msg
}

func TestDedup_DuplicateDeliveryHandledOnce(t *testing.T) {
	var h countingHandler
	mw := dedupOver(t, middleware.NewMemoryStore(100), h.handle)
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
	mw := dedupOver(t, middleware.NewMemoryStore(100), h)

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
	mw := dedupOver(t, middleware.NewMemoryStore(100), h.handle)

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
	mw := dedupOver(t, middleware.NewMemoryStore(100), h)

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
	mw := dedupOver(t, downStore{}, h.handle)
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
	cfg := middleware.DefaultDedupConfig()
	cfg.FailOpen = true
	mw := newDedup(t, cfg, downStore{}).Middleware(func(msg *message.Message) ([]*message.Message, error) {
		if c := middleware.ClaimFrom(msg.Context()); c != nil {
			t.Errorf("ClaimFrom = %+v, want nil: nothing is claimed when failing open", c)
		}
		return h.handle(msg)
	})
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
	mw := dedupOver(t, completeFailsStore{middleware.NewMemoryStore(10)}, h.handle)
	if _, err := mw(delivery("m-1", "billing", "{}")); err != nil {
		t.Fatalf("got %v, want nil: the handler succeeded, nacking would run it again", err)
	}
}

func TestDedup_KeyFromMetadataAndJSONField(t *testing.T) {
	tests := []struct {
		name   string
		key    func(*message.Message) (string, error)
		cfgKey string // the same key as DedupConfig.Key
		// two deliveries with different UUIDs
		first, second *message.Message
		wantRuns      int32
		wantErr       []string // substrings of a permanent error from the first delivery
	}{
		{
			name:     "metadata, same key",
			key:      middleware.KeyFromMetadata("order_id"),
			cfgKey:   "metadata:order_id",
			first:    delivery("m-1", "g", "{}", "order_id", "o-1"),
			second:   delivery("m-2", "g", "{}", "order_id", "o-1"),
			wantRuns: 1,
		},
		{
			name:     "metadata, different keys",
			key:      middleware.KeyFromMetadata("order_id"),
			cfgKey:   "metadata:order_id",
			first:    delivery("m-1", "g", "{}", "order_id", "o-1"),
			second:   delivery("m-2", "g", "{}", "order_id", "o-2"),
			wantRuns: 2,
		},
		{
			name:    "metadata missing",
			key:     middleware.KeyFromMetadata("order_id"),
			cfgKey:  "metadata:order_id",
			first:   delivery("m-1", "g", "{}"),
			wantErr: []string{`"order_id"`, "m-1"},
		},
		{
			name:     "json string field, same key",
			key:      middleware.KeyFromJSONField("order_id"),
			cfgKey:   "json:order_id",
			first:    delivery("m-1", "g", `{"a":{"order_id":"x"},"order_id":"o-1"}`),
			second:   delivery("m-2", "g", `{"order_id": "o-1", "b": [1,2]}`),
			wantRuns: 1,
		},
		{
			name:     "json number field, same key",
			key:      middleware.KeyFromJSONField("n"),
			cfgKey:   "json:n",
			first:    delivery("m-1", "g", `{"n":12345678901234567890}`),
			second:   delivery("m-2", "g", `{"n":12345678901234567890,"x":1}`),
			wantRuns: 1,
		},
		{
			name:     "json field, different keys",
			key:      middleware.KeyFromJSONField("order_id"),
			cfgKey:   "json:order_id",
			first:    delivery("m-1", "g", `{"order_id":"o-1"}`),
			second:   delivery("m-2", "g", `{"order_id":"o-2"}`),
			wantRuns: 2,
		},
		{
			name:    "json field missing",
			key:     middleware.KeyFromJSONField("order_id"),
			cfgKey:  "json:order_id",
			first:   delivery("m-1", "g", `{"a":{"order_id":"x"}}`),
			wantErr: []string{`"order_id"`, "m-1", "missing"},
		},
		{
			name:    "json field null",
			key:     middleware.KeyFromJSONField("order_id"),
			cfgKey:  "json:order_id",
			first:   delivery("m-1", "g", `{"order_id":null}`),
			wantErr: []string{`"order_id"`, "m-1", "null"},
		},
		{
			name:    "json field an object",
			key:     middleware.KeyFromJSONField("order_id"),
			cfgKey:  "json:order_id",
			first:   delivery("m-1", "g", `{"order_id":{"id":1}}`),
			wantErr: []string{`"order_id"`, "m-1", "not a string or number"},
		},
		{
			name:    "payload not json",
			key:     middleware.KeyFromJSONField("order_id"),
			cfgKey:  "json:order_id",
			first:   delivery("m-1", "g", `order_id=1`),
			wantErr: []string{`"order_id"`, "m-1", "not JSON"},
		},
		{
			name:    "payload a json array",
			key:     middleware.KeyFromJSONField("order_id"),
			cfgKey:  "json:order_id",
			first:   delivery("m-1", "g", `[{"order_id":"o-1"}]`),
			wantErr: []string{`"order_id"`, "m-1", "not a JSON object"},
		},
	}
	for _, tt := range tests {
		// Each key both ways: by the DedupKey option and by DedupConfig.Key.
		for _, how := range []string{"option", "config"} {
			t.Run(tt.name+", "+how, func(t *testing.T) {
				var h countingHandler
				cfg := middleware.DefaultDedupConfig()
				var opts []middleware.Option
				if how == "option" {
					opts = append(opts, middleware.DedupKey(tt.key))
				} else {
					cfg.Key = tt.cfgKey
				}
				mw := newDedup(t, cfg, middleware.NewMemoryStore(100), opts...).Middleware(h.handle)
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
}

func TestDedup_KeyOptionOverridesConfig(t *testing.T) {
	var h countingHandler
	cfg := middleware.DefaultDedupConfig()
	cfg.Key = "metadata:order_id"
	mw := newDedup(t, cfg, middleware.NewMemoryStore(100), middleware.DedupKey(middleware.KeyFromMetadata("payment_id"))).Middleware(h.handle)
	for _, msg := range []*message.Message{
		delivery("m-1", "g", "{}", "order_id", "o-1", "payment_id", "p-1"),
		delivery("m-2", "g", "{}", "order_id", "o-1", "payment_id", "p-2"),
	} {
		if _, err := mw(msg); err != nil {
			t.Fatal(err)
		}
	}
	if got := h.runs.Load(); got != 2 {
		t.Errorf("handler ran %d times, want 2: the option's key (payment_id) differs", got)
	}
}

func TestDedup_KeysNamespacedByGroup(t *testing.T) {
	store := middleware.NewMemoryStore(100)
	var billing, shipping countingHandler
	billingMW := dedupOver(t, store, billing.handle)
	shippingMW := dedupOver(t, store, shipping.handle)

	// The handler's name stands in for an empty group.
	var audit countingHandler
	auditMW := dedupOver(t, store, audit.handle)
	noGroup := func() *message.Message {
		msg := message.NewMessage("m-1", nil)
		msg.SetContext(millrace.WithConsumer(context.Background(), &millrace.Consumer{Handler: "audit"}))
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
		cfg := middleware.DefaultDedupConfig()
		cfg.Lease = lease
		mw := newDedup(t, cfg, middleware.NewMemoryStore(100)).Middleware(h)

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
		cfg := middleware.DefaultDedupConfig()
		cfg.TTL = ttl
		mw := newDedup(t, cfg, middleware.NewMemoryStore(100)).Middleware(h.handle)
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

// recordingStore is a MemoryStore that records every call made to it, as
// "claim KEY", "complete KEY" and "release KEY", and the owners it saw.
type recordingStore struct {
	*middleware.MemoryStore
	mu     sync.Mutex
	calls  []string
	owners []string
}

func newRecordingStore() *recordingStore {
	return &recordingStore{MemoryStore: middleware.NewMemoryStore(100)}
}

func (s *recordingStore) record(call, key, owner string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, call+" "+key)
	s.owners = append(s.owners, owner)
}

func (s *recordingStore) recorded() ([]string, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls), slices.Clone(s.owners)
}

func (s *recordingStore) Claim(ctx context.Context, key, owner string, lease time.Duration) (middleware.ClaimResult, error) {
	s.record("claim", key, owner)
	return s.MemoryStore.Claim(ctx, key, owner, lease)
}

func (s *recordingStore) Complete(ctx context.Context, key, owner string, ttl time.Duration) error {
	s.record("complete", key, owner)
	return s.MemoryStore.Complete(ctx, key, owner, ttl)
}

func (s *recordingStore) Release(ctx context.Context, key, owner string) error {
	s.record("release", key, owner)
	return s.MemoryStore.Release(ctx, key, owner)
}

func TestDedup_ClaimFromGivesHandlerItsClaim(t *testing.T) {
	store := newRecordingStore()
	cfg := middleware.DefaultDedupConfig()
	cfg.TTL = time.Hour
	var claim middleware.Claim
	mw := newDedup(t, cfg, store).Middleware(func(msg *message.Message) ([]*message.Message, error) {
		c := middleware.ClaimFrom(msg.Context())
		if c == nil {
			t.Fatal("ClaimFrom = nil inside Dedup")
		}
		claim = *c
		return nil, nil
	})
	msg := delivery("m-1", "billing", "{}")
	if _, err := mw(msg); err != nil {
		t.Fatal(err)
	}
	calls, owners := store.recorded()
	if claim.Key != "billing:m-1" || claim.TTL != time.Hour || claim.Store != middleware.DedupStore(store) {
		t.Errorf("claim %+v, want key billing:m-1 (group:id), TTL 1h and the store", claim)
	}
	if claim.Owner == "" || owners[0] != claim.Owner {
		t.Errorf("claim owner %q, want the owner the store was given (%q)", claim.Owner, owners[0])
	}
	if want := []string{"claim billing:m-1", "complete billing:m-1"}; !slices.Equal(calls, want) {
		t.Errorf("store calls %v, want %v", calls, want)
	}
	if c := middleware.ClaimFrom(msg.Context()); c != nil {
		t.Errorf("ClaimFrom after the handler = %+v, want nil: the message's context is restored", c)
	}
	if c := middleware.ClaimFrom(context.Background()); c != nil {
		t.Errorf("ClaimFrom outside Dedup = %+v, want nil", c)
	}
}

func TestDedup_MarkCompletedSkipsComplete(t *testing.T) {
	store := newRecordingStore()
	var h countingHandler
	mw := dedupOver(t, store, func(msg *message.Message) ([]*message.Message, error) {
		// The inbox: the handler records the key as done with its own
		// writes (here straight in the store) and tells Dedup so.
		c := middleware.ClaimFrom(msg.Context())
		if err := c.Store.Complete(msg.Context(), c.Key, c.Owner, c.TTL); err != nil {
			return nil, err
		}
		c.MarkCompleted()
		return h.handle(msg)
	})
	for i := range 2 {
		if _, err := mw(delivery("m-1", "billing", "{}")); err != nil {
			t.Fatalf("delivery %d: %v", i+1, err)
		}
	}
	calls, _ := store.recorded()
	want := []string{"claim billing:m-1", "complete billing:m-1", "claim billing:m-1"}
	if !slices.Equal(calls, want) {
		t.Errorf("store calls %v, want %v: Complete once, by the handler, and the duplicate skipped", calls, want)
	}
	if got := h.runs.Load(); got != 1 {
		t.Errorf("handler ran %d times, want 1", got)
	}
}

func TestDedup_FailingHandlerReleasesItsClaim(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name string
		mark bool // the handler calls MarkCompleted before failing
	}{{"failed", false}, {"failed after MarkCompleted", true}} {
		t.Run(tc.name, func(t *testing.T) {
			store := newRecordingStore()
			var owner string
			runs := 0
			mw := dedupOver(t, store, func(msg *message.Message) ([]*message.Message, error) {
				runs++
				if runs > 1 {
					return nil, nil
				}
				c := middleware.ClaimFrom(msg.Context())
				owner = c.Owner
				if tc.mark {
					c.MarkCompleted()
				}
				return nil, boom
			})
			if _, err := mw(delivery("m-1", "billing", "{}")); !errors.Is(err, boom) {
				t.Fatalf("got %v, want the handler's error", err)
			}
			calls, owners := store.recorded()
			if want := []string{"claim billing:m-1", "release billing:m-1"}; !slices.Equal(calls, want) {
				t.Errorf("store calls %v, want %v", calls, want)
			}
			if owners[1] != owner {
				t.Errorf("released for owner %q, want the claim's %q", owners[1], owner)
			}
			// Released: a redelivery runs again at once.
			if _, err := mw(delivery("m-1", "billing", "{}")); err != nil || runs != 2 {
				t.Errorf("redelivery: %v after %d runs, want nil after 2", err, runs)
			}
		})
	}
}

func TestDedupConfig_Validate(t *testing.T) {
	valid := middleware.DefaultDedupConfig()
	with := func(set func(*middleware.DedupConfig)) middleware.DedupConfig {
		cfg := valid
		set(&cfg)
		return cfg
	}
	for _, tc := range []struct {
		name string
		cfg  middleware.DedupConfig
		want []string // key=value of every ConfigError, in order; nil for valid
	}{
		{"defaults", valid, nil},
		{"fail open", with(func(c *middleware.DedupConfig) { c.FailOpen = true }), nil},
		{"metadata key", with(func(c *middleware.DedupConfig) { c.Key = "metadata:order_id" }), nil},
		{"json key", with(func(c *middleware.DedupConfig) { c.Key = "json:order_id" }), nil},
		{"negative lease", with(func(c *middleware.DedupConfig) { c.Lease = -1 }), []string{"lease=-1ns"}},
		{"no ttl", with(func(c *middleware.DedupConfig) { c.TTL = 0 }), []string{"ttl=0s"}},
		{"unknown key kind", with(func(c *middleware.DedupConfig) { c.Key = "header:order_id" }), []string{"key=header:order_id"}},
		{"metadata key without a name", with(func(c *middleware.DedupConfig) { c.Key = "metadata:" }), []string{"key=metadata:"}},
		{"json key without a field", with(func(c *middleware.DedupConfig) { c.Key = "json:" }), []string{"key=json:"}},
		{"every error at once", middleware.DedupConfig{TTL: -time.Second, Key: "xml:id"}, []string{"lease=0s", "ttl=-1s", "key=xml:id"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkConfigErrors(t, tc.cfg.Validate(), tc.want)
			d, err := middleware.NewDedup(tc.cfg, middleware.NewMemoryStore(1))
			checkConfigErrors(t, err, tc.want)
			if (d == nil) != (tc.want != nil) {
				t.Errorf("NewDedup returned %v with error %v", d, err)
			}
		})
	}
}

func TestNewDedup_ReturnsErrorsInsteadOfPanicking(t *testing.T) {
	d, err := middleware.NewDedup(middleware.DedupConfig{}, nil)
	if d != nil || err == nil {
		t.Fatalf("got %v, %v; want an error", d, err)
	}
	if !strings.Contains(err.Error(), "nil DedupStore") {
		t.Errorf("error %q does not name the missing store", err)
	}
	checkConfigErrors(t, err, []string{"lease=0s", "ttl=0s"})
}

func BenchmarkDedup_MemoryStore(b *testing.B) {
	nop := func(*message.Message) ([]*message.Message, error) { return nil, nil }
	b.Run("new key", func(b *testing.B) {
		mw := dedupOver(b, middleware.NewMemoryStore(100_000), nop)
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
		mw := dedupOver(b, middleware.NewMemoryStore(100_000), nop)
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
