package dlq_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/transports/memory"
)

const poisonTopic = "shop.poison"

// t0 is the time of the first failure in the seeded entries.
var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// poisoned describes one message set aside by the poison queue.
type poisoned struct {
	id, handler, topic, reason string
	lastFailed                 time.Time
	replays                    int // replay_count before it was set aside
}

// message returns p as the poison queue would publish it: the original
// envelope plus poison and retry metadata.
func (p poisoned) message() *message.Message {
	m := message.NewMessage(p.id, []byte(`{"order_id":"`+p.id+`"}`))
	m.Metadata.Set(millrace.MetadataCorrelationID, "corr-"+p.id)
	m.Metadata.Set(millrace.MetadataPartitionKey, "key-"+p.id)
	m.Metadata.Set(millrace.MetadataRetryAttempts, "3")
	m.Metadata.Set(millrace.MetadataRetryRounds, "2")
	m.Metadata.Set(millrace.MetadataFirstFailedAt, t0.Format(time.RFC3339Nano))
	m.Metadata.Set(millrace.MetadataPoisonReason, p.reason)
	m.Metadata.Set(millrace.MetadataPoisonHandler, p.handler)
	if p.topic != "" {
		m.Metadata.Set(millrace.MetadataPoisonTopic, p.topic)
	}
	m.Metadata.Set(millrace.MetadataPoisonGroup, "shop."+p.handler)
	m.Metadata.Set(millrace.MetadataPoisonService, "shop")
	m.Metadata.Set(millrace.MetadataPoisonAttempts, "5")
	m.Metadata.Set(millrace.MetadataPoisonFirstFailedAt, t0.Format(time.RFC3339))
	if !p.lastFailed.IsZero() {
		m.Metadata.Set(millrace.MetadataPoisonLastFailedAt, p.lastFailed.Format(time.RFC3339Nano))
	}
	if p.replays > 0 {
		m.Metadata.Set(millrace.MetadataReplayCount, strconv.Itoa(p.replays))
	}
	return m
}

// seed returns a broker whose poison topic holds ps, in order.
func seed(t *testing.T, ps ...poisoned) *memory.Broker {
	t.Helper()
	b, err := memory.New(*memory.DefaultConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	for _, p := range ps {
		if err := b.Publish(poisonTopic, p.message()); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// standard is the poison topic most tests start from.
var standard = []poisoned{
	{id: "p1", handler: "place-order", topic: "orders.commands", reason: "connection refused", lastFailed: t0.Add(time.Minute)},
	{id: "p2", handler: "notify", topic: "orders.events", reason: "SMTP: mailbox full", lastFailed: t0.Add(2 * time.Minute)},
	{id: "p3", handler: "place-order", topic: "orders.commands", reason: "decode PlaceOrder: unexpected field", lastFailed: t0.Add(3 * time.Minute)},
	{id: "p4", handler: "place-order", topic: "", reason: "written by a foreign tool", lastFailed: t0.Add(4 * time.Minute)},
	{id: "p5", handler: "notify", topic: "orders.events", reason: "no failure time"},
}

func idsOf[E any](es []E, id func(E) string) []string {
	out := make([]string, 0, len(es))
	for _, e := range es {
		out = append(out, id(e))
	}
	return out
}
