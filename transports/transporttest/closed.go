package transporttest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/transports"
)

// delayer and browser are the optional parts of a transport that
// CheckClosed calls: middleware.Delayer and dlq.Browser.
type (
	delayer interface {
		Delay(ctx context.Context, topic, group string, msg *message.Message, delay time.Duration) error
	}
	browser interface {
		Browse(ctx context.Context, topic string) ([]*message.Message, error)
	}
)

// CheckClosed closes tr and checks that its calls fail afterwards with an
// error wrapping [transports.ErrClosed]: Subscriber(group), Subscribe to
// topic on a subscriber of group made before Close, Publish to topic, and
// Delay, Browse and Retain where tr has them. It checks that a second Close
// returns nil as well.
func CheckClosed(t *testing.T, tr transports.Transport, topic, group string) {
	t.Helper()
	sub, err := tr.Subscriber(group)
	if err != nil {
		t.Fatalf("subscriber of group %s: %v", group, err)
	}
	if err := tr.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := tr.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	ctx := context.Background()
	calls := map[string]func() error{
		"Subscriber": func() error { _, err := tr.Subscriber(group); return err },
		"Subscribe":  func() error { _, err := sub.Subscribe(ctx, topic); return err },
		"Publish": func() error {
			return tr.Publisher().Publish(topic, message.NewMessage(watermill.NewUUID(), nil))
		},
	}
	if d, ok := tr.(delayer); ok {
		calls["Delay"] = func() error {
			return d.Delay(ctx, topic, group, message.NewMessage(watermill.NewUUID(), nil), time.Second)
		}
	}
	if b, ok := tr.(browser); ok {
		calls["Browse"] = func() error { _, err := b.Browse(ctx, topic); return err }
	}
	if r, ok := tr.(transports.Retainer); ok {
		calls["Retain"] = func() error { return r.Retain(ctx, topic) }
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, transports.ErrClosed) {
			t.Errorf("%s after Close: %v, want an error wrapping transports.ErrClosed", name, err)
		}
	}
}
