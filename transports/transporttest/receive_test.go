package transporttest_test

import (
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/transports/transporttest"
)

func TestReceive_AcksAndReturnsInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ch := make(chan *message.Message, 3)
		msgs := []*message.Message{message.NewMessage("a", nil), message.NewMessage("b", nil), message.NewMessage("c", nil)}
		for _, m := range msgs {
			ch <- m
		}
		if got := transporttest.Next(t, ch, time.Second); got != msgs[0] {
			t.Fatalf("Next = %s, want a", got.UUID)
		}
		select {
		case <-msgs[0].Acked():
			t.Error("Next acked its message")
		default:
		}
		if got := transporttest.ReceiveIDs(t, ch, 2, time.Second); !slices.Equal(got, []string{"b", "c"}) {
			t.Errorf("ReceiveIDs = %v, want [b c]", got)
		}
		for _, m := range msgs[1:] {
			select {
			case <-m.Acked():
			default:
				t.Errorf("%s not acked", m.UUID)
			}
		}
		transporttest.ExpectNone(t, ch, time.Second)
	})
}

func TestUUIDs(t *testing.T) {
	msgs := []*message.Message{message.NewMessage("x", nil), message.NewMessage("y", nil)}
	if got := transporttest.UUIDs(msgs); !slices.Equal(got, []string{"x", "y"}) {
		t.Errorf("UUIDs = %v", got)
	}
}
