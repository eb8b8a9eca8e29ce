package middleware

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
)

// ErrDuplicateInFlight is returned (wrapped) by Dedup when another delivery
// of the same key holds an unexpired claim: the message is nacked and comes
// back later, when the other delivery has finished (then it is skipped) or
// given up (then it runs). It is not a handler failure: retry and poison
// middleware should not count it as an attempt (see HeldBack).
var ErrDuplicateInFlight = errors.New("duplicate delivery in flight")

// DedupConfig configures deduplication ([NewDedup]; config section
// middleware.dedup, where the store is chosen too). Start from
// [DefaultDedupConfig].
type DedupConfig struct {
	// Lease is how long a claim keeps other deliveries of the key out while
	// the handler runs. If the process dies, another delivery can take the
	// key over after Lease. Set it above the handler's longest run (its
	// timeout); a handler still running after Lease may run concurrently
	// with a duplicate. Default 30s.
	Lease time.Duration `yaml:"lease"`
	// TTL is how long a done key is remembered; a duplicate arriving later
	// runs again. Set it above the longest redelivery window of the
	// transport. Default 24h.
	TTL time.Duration `yaml:"ttl"`
	// FailOpen chooses what happens when the store fails on Claim (errors
	// wrapping [ErrStoreUnavailable], or any other store error). False (the
	// default) fails closed: the middleware returns the error, the message
	// is nacked and retried once the store is back. True runs the handler
	// without deduplication, preferring availability over exactly-once
	// effects.
	FailOpen bool `yaml:"fail_open"`
	// Key chooses the idempotency key: "" (default) is the message id,
	// "metadata:NAME" a metadata entry ([KeyFromMetadata]), "json:FIELD" a
	// top-level field of a JSON payload ([KeyFromJSONField]). [DedupKey]
	// replaces it with a function.
	Key string `yaml:"key"`
}

// DefaultDedupConfig returns the defaults of [DedupConfig]: 30s leases,
// done keys kept 24h, fail closed, keyed by message id.
func DefaultDedupConfig() DedupConfig {
	return DedupConfig{Lease: 30 * time.Second, TTL: 24 * time.Hour}
}

// Validate returns a [millrace.ConfigError] for every bad value, keyed
// relative to the section (lease, ttl, key), all at once.
func (c DedupConfig) Validate() error {
	var errs []error
	if c.Lease <= 0 {
		errs = append(errs, configErr("lease", c.Lease.String(), "must be greater than 0"))
	}
	if c.TTL <= 0 {
		errs = append(errs, configErr("ttl", c.TTL.String(), "must be greater than 0"))
	}
	if _, err := c.keyFunc(); err != nil {
		errs = append(errs, configErr("key", c.Key, err.Error()))
	}
	return millrace.JoinConfigErrors(errs)
}

// keyFunc returns the key function that Key names.
func (c DedupConfig) keyFunc() (func(*message.Message) (string, error), error) {
	switch k := c.Key; {
	case k == "":
		return keyFromUUID, nil
	case strings.HasPrefix(k, "metadata:") && len(k) > len("metadata:"):
		return KeyFromMetadata(strings.TrimPrefix(k, "metadata:")), nil
	case strings.HasPrefix(k, "json:") && len(k) > len("json:"):
		return KeyFromJSONField(strings.TrimPrefix(k, "json:")), nil
	}
	return nil, errors.New(`must be empty (message id), "metadata:NAME" or "json:FIELD"`)
}

// Dedup makes a handler's effects happen once per idempotency key, on top of
// at-least-once delivery. Before the handler runs, it claims the message's
// key in its store for this delivery:
//
//   - Claimed: the handler runs. If it returns nil, the key is recorded as
//     done for TTL and the message is acked; if it returns an error (or
//     panics), the claim is released so a redelivery runs the handler again.
//   - AlreadyDone: a delivery of this key succeeded before; the handler does
//     not run and the message is acked.
//   - Busy: another delivery holds the key right now; the handler does not
//     run and the middleware returns an error wrapping
//     [ErrDuplicateInFlight], so the message is nacked and redelivered
//     later.
//
// Keys are namespaced by the consumer group of the delivery ([ConsumerOf]),
// so every group that consumes a message handles it once, independently.
// The key given to the store is group + ":" + key. While the handler runs,
// [ClaimFrom] gives it the claim, so that it can record the key as done in
// its own database transaction (see [Claim]).
//
// If the handler succeeds but recording the key fails, the message is still
// acked (nacking would run the handler's effects again for certain) and the
// failure is logged; a later duplicate may then run once more after Lease.
//
// In a middleware stack, put Dedup inside retry and poison middleware, which
// hold back [ErrDuplicateInFlight] and [ErrStoreUnavailable] rather than
// count them as failures (see [HeldBack]), and outside [Timeout], so Lease
// covers the handler's whole run.
//
// Dedup is written anew because Watermill's Deduplicator records a key
// before the handler runs (its ExpiringKeyRepository has only IsDuplicate,
// no claim, complete or release), so a failed handler's redelivery is
// dropped as a duplicate and a delivery still in flight cannot be told from
// a finished one; its in-memory repository also runs a cleanup goroutine.
type Dedup struct {
	store    DedupStore
	key      func(*message.Message) (string, error)
	lease    time.Duration
	ttl      time.Duration
	failOpen bool
	logger   *slog.Logger
	owners   *ownerSource
}

// NewDedup returns deduplication configured by cfg over store, or the
// configuration's errors. Share one store (and key namespace) among all
// instances of a service to deduplicate across them.
func NewDedup(cfg DedupConfig, store DedupStore, opts ...Option) (*Dedup, error) {
	var errs []error
	if store == nil {
		errs = append(errs, errors.New("dedup: nil DedupStore"))
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("dedup: %w", err))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	o := applyOptions(opts)
	key := o.key
	if key == nil {
		key, _ = cfg.keyFunc() // valid: checked above
	}
	return &Dedup{
		store: store, key: key, lease: cfg.Lease, ttl: cfg.TTL, failOpen: cfg.FailOpen,
		logger: o.logger, owners: newOwnerSource(),
	}, nil
}

// Claim is a delivery's hold on its idempotency key while the handler runs:
// [ClaimFrom] returns it from the handler's context. A handler that keeps
// its effects in the same database as the dedup store can record the key as
// done in its own transaction (the inbox: its writes and the "handled" mark
// commit together) and then call [Claim.MarkCompleted], so that [Dedup]
// does not record it a second time.
type Claim struct {
	// Key is the namespaced key as the store knows it ("<group>:<key>").
	Key string
	// Owner is this delivery's owner token in the store.
	Owner string
	// TTL is how long the key is to be remembered as done.
	TTL time.Duration
	// Store is the store that holds the claim.
	Store DedupStore

	held      bool
	completed bool
}

// MarkCompleted tells [Dedup] that the handler has recorded the key as done
// itself; if the handler then returns nil, Dedup does not call
// [DedupStore.Complete]. If the handler returns an error, Dedup releases
// the claim as usual (a transaction that recorded the key was rolled back
// with the handler's other writes, or the key stays done and a redelivery
// is skipped).
func (c *Claim) MarkCompleted() { c.completed = true }

// ClaimKey is the context key of a message's claim slot. A message context
// that answers Value(ClaimKey{}) with a *Claim (the App's do) lends [Dedup]
// that slot for the claim, so that carrying it costs no allocation; on other
// contexts Dedup wraps the context to carry it.
type ClaimKey struct{}

// claimCtx carries a claim on a context that has no slot for it.
type claimCtx struct {
	context.Context
	claim Claim
}

func (c *claimCtx) Value(key any) any {
	if key == (ClaimKey{}) {
		return &c.claim
	}
	return c.Context.Value(key)
}

// ClaimFrom returns the dedup claim of the delivery being handled in ctx, or
// nil when the handler runs without deduplication (switched off, a store
// that failed open, outside [Dedup]).
func ClaimFrom(ctx context.Context) *Claim {
	c, _ := ctx.Value(ClaimKey{}).(*Claim)
	if c == nil || !c.held {
		return nil
	}
	return c
}

// Middleware returns h wrapped with deduplication.
func (d *Dedup) Middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		key, err := d.key(msg)
		if err != nil {
			return nil, err
		}
		ctx := msg.Context()
		key = namespacedKey(ctx, key)
		owner := d.owners.next()

		res, err := d.store.Claim(ctx, key, owner, d.lease)
		if err != nil {
			if d.failOpen && ctx.Err() == nil {
				return h(msg)
			}
			return nil, fmt.Errorf("dedup: claim key %q of message %s: %w", key, msg.UUID, err)
		}
		switch res {
		case Claimed:
		case AlreadyDone:
			settle(ctx, Duplicate)
			return nil, nil
		case Busy:
			return nil, fmt.Errorf("dedup: key %q of message %s: %w", key, msg.UUID, ErrDuplicateInFlight)
		default:
			return nil, fmt.Errorf("dedup: claim key %q of message %s: store returned unknown ClaimResult %d", key, msg.UUID, res)
		}

		claim, _ := ctx.Value(ClaimKey{}).(*Claim)
		if claim == nil || claim.held { // no slot, or an outer Dedup's
			cc := &claimCtx{Context: ctx}
			claim = &cc.claim
			msg.SetContext(cc)
		}
		*claim = Claim{Key: key, Owner: owner, TTL: d.ttl, Store: d.store, held: true}
		returned := false
		defer func() {
			*claim = Claim{}
			msg.SetContext(ctx)
			if !returned { // h panicked: let a redelivery run it again
				d.release(ctx, msg, key, owner)
			}
		}()
		produced, err := h(msg)
		returned = true
		if err != nil {
			d.release(ctx, msg, key, owner)
			return produced, err
		}
		if claim.completed {
			return produced, nil
		}
		if ctx.Err() != nil {
			ctx = context.WithoutCancel(ctx)
		}
		if cerr := d.store.Complete(ctx, key, owner, d.ttl); cerr != nil && d.logger != nil {
			d.logger.LogAttrs(ctx, slog.LevelError, "dedup: handler succeeded but its key was not recorded; a later duplicate may run again",
				slog.String("key", key), slog.String("message_id", msg.UUID), slog.Any("error", cerr))
		}
		return produced, nil
	}
}

func (d *Dedup) release(ctx context.Context, msg *message.Message, key, owner string) {
	if err := d.store.Release(context.WithoutCancel(ctx), key, owner); err != nil && d.logger != nil {
		d.logger.LogAttrs(ctx, slog.LevelError, "dedup: key not released; a redelivery waits until the lease ends",
			slog.String("key", key), slog.String("message_id", msg.UUID), slog.Any("error", err))
	}
}

// namespacedKey prefixes key with the delivery's consumer group (or
// handler) and a colon.
func namespacedKey(ctx context.Context, key string) string {
	c := ConsumerOf(ctx)
	ns := c.Group
	if ns == "" {
		ns = c.Handler
	}
	return ns + ":" + key
}

// ownerSource makes owner tokens unique per delivery: a random prefix per
// Middleware call (so per process and handler) and a counter, one small
// allocation each.
type ownerSource struct {
	prefix [17]byte // 16 hex digits and '-'
	seq    atomic.Uint64
}

func newOwnerSource() *ownerSource {
	var o ownerSource
	var r [8]byte
	_, _ = rand.Read(r[:]) // crypto/rand.Read never fails
	hex.Encode(o.prefix[:16], r[:])
	o.prefix[16] = '-'
	return &o
}

func (o *ownerSource) next() string {
	var buf [17 + 20]byte
	b := append(buf[:0], o.prefix[:]...)
	b = strconv.AppendUint(b, o.seq.Add(1), 36)
	return string(b)
}

func keyFromUUID(msg *message.Message) (string, error) {
	if msg.UUID == "" {
		return "", millrace.Permanent(errors.New("dedup: message has no UUID to use as key"))
	}
	return msg.UUID, nil
}

// KeyFromMetadata returns a Dedup.Key that reads the key from the metadata
// entry name. A message without it (or with it empty) gets a
// millrace.Permanent error naming the entry and the message.
func KeyFromMetadata(name string) func(*message.Message) (string, error) {
	return func(msg *message.Message) (string, error) {
		if v := msg.Metadata.Get(name); v != "" {
			return v, nil
		}
		return "", millrace.Permanent(fmt.Errorf("dedup: message %s has no metadata %q for its key", msg.UUID, name))
	}
}

// KeyFromJSONField returns a Dedup.Key that reads the key from the top-level
// field of the message's JSON object payload. A string value is used as is;
// a number by its JSON text (so 1 and 1.0 are different keys). A payload that is not a JSON object, or a field
// that is missing, null, empty or of another type, gets a millrace.Permanent
// error naming the field and the message.
func KeyFromJSONField(field string) func(*message.Message) (string, error) {
	return func(msg *message.Message) (string, error) {
		v, err := jsonField(msg.Payload, field)
		if err != nil {
			return "", millrace.Permanent(fmt.Errorf("dedup: key field %q of message %s: %w", field, msg.UUID, err))
		}
		return v, nil
	}
}

var errNoKeyField = errors.New("missing")

func jsonField(payload []byte, field string) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return "", fmt.Errorf("payload is not JSON: %w", err)
	}
	if tok != json.Delim('{') {
		return "", errors.New("payload is not a JSON object")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", fmt.Errorf("payload is not JSON: %w", err)
		}
		if name, _ := tok.(string); name != field {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return "", fmt.Errorf("payload is not JSON: %w", err)
			}
			continue
		}
		tok, err = dec.Token()
		if err != nil {
			return "", fmt.Errorf("payload is not JSON: %w", err)
		}
		switch v := tok.(type) {
		case string:
			if v == "" {
				return "", errors.New("empty")
			}
			return v, nil
		case json.Number:
			return v.String(), nil
		case nil:
			return "", errors.New("null")
		default:
			return "", errors.New("not a string or number")
		}
	}
	return "", errNoKeyField
}
