package amqp_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/millrace/millrace/middleware/dlq"
	"github.com/millrace/millrace/transports"
	"github.com/millrace/millrace/transports/amqp"
	"github.com/millrace/millrace/transports/transporttest"
)

var (
	_ transports.Retainer = (*amqp.Transport)(nil)
	_ dlq.Browser         = (*amqp.Transport)(nil)
)

// A retained topic keeps messages published before anyone subscribed;
// Browse returns them oldest first without removing them, however often and
// however many at once; a consumer group of the topic is unaffected.
func TestRetain_BrowseKeepsMessagesInOrder(t *testing.T) {
	tr := openTransport(t, nil)
	ctx := context.Background()
	topic := uniqueTopic("retain")
	deleteLater(t, func() []string { return []string{amqp.RetainedQueue(topic)} }, func() []string { return nil })
	if err := tr.Retain(ctx, topic); err != nil {
		t.Fatal(err)
	}
	if err := tr.Retain(ctx, topic); err != nil {
		t.Fatalf("second Retain: %v", err)
	}
	subs := subscribeGroups(t, tr, topic, nil, "other")

	var want []string
	for _, p := range []string{"one", "two", "three"} {
		m := newMessage(p)
		m.Metadata.Set("n", p)
		want = append(want, m.UUID)
		if err := tr.Publisher().Publish(topic, m); err != nil {
			t.Fatal(err)
		}
	}

	for i := range 2 {
		got, err := tr.Browse(ctx, topic)
		if err != nil {
			t.Fatalf("browse %d: %v", i, err)
		}
		if !slices.Equal(transporttest.UUIDs(got), want) {
			t.Fatalf("browse %d: got %v, want %v", i, transporttest.UUIDs(got), want)
		}
		if got[1].Metadata.Get("n") != "two" || string(got[1].Payload) != "two" {
			t.Errorf("browse %d: second message %q %v", i, got[1].Payload, got[1].Metadata)
		}
	}

	// Concurrent browses each see everything.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			got, err := tr.Browse(ctx, topic)
			if err == nil && !slices.Equal(transporttest.UUIDs(got), want) {
				err = fmt.Errorf("concurrent browse: got %v, want %v", transporttest.UUIDs(got), want)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}

	// The consumer group received all three, in order, despite the browses.
	for i, id := range want {
		if got := transporttest.Receive(t, subs["other"], 10*time.Second); got.UUID != id {
			t.Errorf("group message %d: %s, want %s", i, got.UUID, id)
		}
	}
	// And they are still retained.
	if got, err := tr.Browse(ctx, topic); err != nil || len(got) != 3 {
		t.Errorf("after consuming: browse got %d messages, err %v; want 3", len(got), err)
	}
	// dlq.List reads the retained queue through Browse.
	entries, err := dlq.List(ctx, tr, topic, dlq.Filter{})
	if err != nil || len(entries) != 3 {
		t.Errorf("dlq.List: %d entries, err %v; want 3", len(entries), err)
	}
}

func TestBrowse_NotRetainedTopic(t *testing.T) {
	tr := openTransport(t, nil)
	_, err := tr.Browse(context.Background(), uniqueTopic("never-retained"))
	if !errors.Is(err, amqp.ErrNotRetained) {
		t.Errorf("got %v, want ErrNotRetained", err)
	}
}
