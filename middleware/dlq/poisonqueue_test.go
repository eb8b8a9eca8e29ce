package dlq_test

import (
	"errors"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/middleware"
	"github.com/millrace/millrace/middleware/dlq"
)

// TestReplay_WhatPoisonQueueWrote runs the whole cycle on the memory broker
// with the real poison queue: fail, list, replay, fail again, replay again:
// the message is listed and replayed once each time.
func TestReplay_WhatPoisonQueueWrote(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := seed(t)
		delivery := &millrace.Consumer{Service: "shop", Handler: "place-order", Topic: "orders.commands", Group: "shop.place-order"}
		pq, err := middleware.NewPoisonQueue(middleware.DefaultPoisonConfig(), b)
		if err != nil {
			t.Fatal(err)
		}
		failing := pq.Middleware(func(*message.Message) ([]*message.Message, error) {
			return nil, errors.New("inventory: connection refused")
		})
		consume := func(m *message.Message) {
			t.Helper()
			m.SetContext(millrace.WithConsumer(t.Context(), delivery))
			if _, err := failing(m); err != nil {
				t.Fatalf("poison queue: %v", err)
			}
		}
		ch, err := b.Subscriber(delivery.Group).Subscribe(t.Context(), delivery.Topic)
		if err != nil {
			t.Fatal(err)
		}

		failedAt := time.Now().UTC()
		m := message.NewMessage("m1", []byte("{}"))
		m.Metadata.Set(millrace.MetadataRetryAttempts, "2")
		consume(m)

		entries, err := dlq.List(t.Context(), b, middleware.TopicFor("shop"), dlq.Filter{Handler: "place-order", Since: failedAt})
		if err != nil || len(entries) != 1 {
			t.Fatalf("List = %+v, %v; want one entry", entries, err)
		}
		e := entries[0]
		if e.Message.UUID != "m1" || e.Topic != delivery.Topic || e.Group != delivery.Group || e.Service != "shop" ||
			e.Reason != "inventory: connection refused" || e.Attempts < 1 || !e.LastFailedAt.Equal(failedAt) || e.ReplayCount != 0 {
			t.Errorf("entry = %+v", e)
		}

		for round := 1; round <= 2; round++ {
			report, err := dlq.Replay(t.Context(), b, b, middleware.TopicFor("shop"), dlq.Filter{Handler: "place-order"})
			if err != nil {
				t.Fatal(err)
			}
			if want := []dlq.Replayed{{ID: "m1", Topic: delivery.Topic, ReplayCount: round}}; !slices.Equal(report.Replayed, want) {
				t.Fatalf("round %d: replayed %+v, want %+v", round, report.Replayed, want)
			}
			if len(report.Skipped) != 0 {
				t.Errorf("round %d: skipped %+v, want none (earlier failures are not dead letters)", round, report.Skipped)
			}
			var again *message.Message
			select {
			case again = <-ch:
			case <-time.After(time.Minute):
				t.Fatalf("round %d: replay not received", round)
			}
			if again.Metadata.Get(millrace.MetadataRetryAttempts) != "" || again.Metadata.Get(millrace.MetadataPoisonReason) != "" {
				t.Errorf("round %d: replayed metadata %v", round, again.Metadata)
			}
			time.Sleep(time.Minute)
			consume(again) // fails again
			again.Ack()
		}
		// The poison topic holds every failure; List shows the last.
		log, err := b.Browse(t.Context(), middleware.TopicFor("shop"))
		if err != nil {
			t.Fatal(err)
		}
		counts := make([]int, len(log))
		for i, m := range log {
			counts[i] = dlq.ParseEntry(m).ReplayCount
		}
		if !slices.Equal(counts, []int{0, 1, 2}) {
			t.Errorf("replay counts in the poison log = %v, want [0 1 2]", counts)
		}
		entries, err = dlq.List(t.Context(), b, middleware.TopicFor("shop"), dlq.Filter{})
		if err != nil || len(entries) != 1 || entries[0].ReplayCount != 2 || !entries[0].LastFailedAt.Equal(failedAt.Add(2*time.Minute)) {
			t.Errorf("List = %+v, %v; want m1 once, failed after its second replay", entries, err)
		}
	})
}
