package middleware

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
)

// Defaults for Dedup's zero fields.
const (
	DefaultDedupLease = 30 * time.Second
	DefaultDedupTTL   = 24 * time.Hour
)

// ErrDuplicateInFlight is returned (wrapped) by Dedup when another delivery
// of the same key holds an unexpired claim: the message is nacked and comes
// back later, when the other delivery has finished (then it is skipped) or
// given up (then it runs). It is not a handler failure: retry and poison
// middleware should not count it as an attempt (see HeldBack).
var ErrDuplicateInFlight = errors.New("duplicate delivery in flight")

// Dedup makes a handler's effects happen once per idempotency key, on top of
// at-least-once delivery. Before the handler runs, it claims the message's
// key in Store for this delivery:
//
//   - Claimed: the handler runs. If it returns nil, the key is recorded as
//     done for TTL and the message is acked; if it returns an error (or
//     panics), the claim is released so a redelivery runs the handler again.
//   - AlreadyDone: a delivery of this key succeeded before; the handler does
//     not run and the message is acked.
//   - Busy: another delivery holds the key right now; the handler does not
//     run and Middleware returns an error wrapping ErrDuplicateInFlight, so
//     the message is nacked and redelivered later.
//
// Keys are namespaced by the consumer group of the delivery
// (millrace.DeliveryFrom; the handler's name if the group is empty), so
// every group that consumes a message handles it once, independently. The
// key given to Store is group + ":" + key.
//
// If the handler succeeds but recording the key fails, the message is still
// acked (nacking would run the handler's effects again for certain) and the
// failure is logged; a later duplicate may then run once more after Lease.
//
// In a middleware stack, put Dedup inside retry and poison middleware, which
// hold back ErrDuplicateInFlight and ErrStoreUnavailable rather than count
// them as failures (see HeldBack), and outside Timeout, so Lease covers the
// handler's whole run.
//
// Dedup is written anew because Watermill's Deduplicator records a key
// before the handler runs (its ExpiringKeyRepository has only IsDuplicate,
// no claim, complete or release), so a failed handler's redelivery is
// dropped as a duplicate and a delivery still in flight cannot be told from
// a finished one; its in-memory repository also runs a cleanup goroutine.
type Dedup struct {
	// Store keeps the claims and done keys. Required. Share one store (and
	// key namespace) among all instances of a service to deduplicate across
	// them.
	Store DedupStore

	// Key returns a message's idempotency key. Default: the message UUID.
	// Use KeyFromMetadata or KeyFromJSONField when publishers set a business
	// key. An error from Key is returned as the handler's error; mark it
	// millrace.Permanent if retrying cannot help (the helpers do).
	Key func(*message.Message) (string, error)

	// Lease is how long a claim keeps other deliveries of the key out while
	// the handler runs. If the process dies, another delivery can take the
	// key over after Lease. Set it above the handler's longest run (its
	// timeout); a handler still running after Lease may run concurrently
	// with a duplicate. Default 30s.
	Lease time.Duration

	// TTL is how long a done key is remembered; a duplicate arriving later
	// runs again. Set it above the longest redelivery window of the
	// transport. Default 24h.
	TTL time.Duration

	// FailOpen chooses what happens when Store fails on Claim (errors
	// wrapping ErrStoreUnavailable, or any other store error). False (the
	// default) fails closed: Middleware returns the error, the message is
	// nacked and retried once the store is back. True runs the handler
	// without deduplication, preferring availability over exactly-once
	// effects; nothing is logged for it here.
	FailOpen bool

	// Logger logs keys that could not be recorded as done or released after
	// the handler ran. Default: watermill.NopLogger.
	Logger watermill.LoggerAdapter
}

// Validate reports what is wrong with the configuration, naming the field.
// Zero Lease, TTL, Key and Logger are valid: they take their defaults.
func (d *Dedup) Validate() error {
	var errs []error
	if d.Store == nil {
		errs = append(errs, errors.New("middleware.Dedup.Store is required"))
	}
	if d.Lease < 0 {
		errs = append(errs, fmt.Errorf("middleware.Dedup.Lease is %v, must not be negative", d.Lease))
	}
	if d.TTL < 0 {
		errs = append(errs, fmt.Errorf("middleware.Dedup.TTL is %v, must not be negative", d.TTL))
	}
	return errors.Join(errs...)
}

func (d *Dedup) setDefaults() {
	if d.Key == nil {
		d.Key = keyFromUUID
	}
	if d.Lease == 0 {
		d.Lease = DefaultDedupLease
	}
	if d.TTL == 0 {
		d.TTL = DefaultDedupTTL
	}
	if d.Logger == nil {
		d.Logger = watermill.NopLogger{}
	}
}

// Middleware returns h wrapped with deduplication. It panics if the
// configuration is invalid; call Validate first to handle that as an error.
func (d Dedup) Middleware(h message.HandlerFunc) message.HandlerFunc {
	d.setDefaults()
	if err := d.Validate(); err != nil {
		panic(err)
	}
	owners := newOwnerSource()
	return func(msg *message.Message) ([]*message.Message, error) {
		key, err := d.Key(msg)
		if err != nil {
			return nil, err
		}
		ctx := msg.Context()
		key = namespacedKey(ctx, key)
		owner := owners.next()

		res, err := d.Store.Claim(ctx, key, owner, d.Lease)
		if err != nil {
			if d.FailOpen && ctx.Err() == nil {
				return h(msg)
			}
			return nil, fmt.Errorf("dedup: claim key %q of message %s: %w", key, msg.UUID, err)
		}
		switch res {
		case Claimed:
		case AlreadyDone:
			return nil, nil
		case Busy:
			return nil, fmt.Errorf("dedup: key %q of message %s: %w", key, msg.UUID, ErrDuplicateInFlight)
		default:
			return nil, fmt.Errorf("dedup: claim key %q of message %s: store returned unknown ClaimResult %d", key, msg.UUID, res)
		}

		returned := false
		defer func() {
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
		if ctx.Err() != nil {
			ctx = context.WithoutCancel(ctx)
		}
		if cerr := d.Store.Complete(ctx, key, owner, d.TTL); cerr != nil {
			d.Logger.Error("Dedup: handler succeeded but its key was not recorded; a later duplicate may run again", cerr,
				watermill.LogFields{"key": key, "message_uuid": msg.UUID})
		}
		return produced, nil
	}
}

func (d *Dedup) release(ctx context.Context, msg *message.Message, key, owner string) {
	if err := d.Store.Release(context.WithoutCancel(ctx), key, owner); err != nil {
		d.Logger.Error("Dedup: key not released; a redelivery waits until the lease ends", err,
			watermill.LogFields{"key": key, "message_uuid": msg.UUID})
	}
}

// namespacedKey prefixes key with the delivery's consumer group (or handler)
// and a colon.
func namespacedKey(ctx context.Context, key string) string {
	var ns string
	if dl := millrace.DeliveryFrom(ctx); dl != nil {
		ns = dl.Group
		if ns == "" {
			ns = dl.Handler
		}
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
