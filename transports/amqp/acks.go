package amqp

import (
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// ackHold is the longest an ack is held: long enough for a busy queue's
// next messages to be handled and acked with it, short enough that a quiet
// one is settled at once and a slow handler does not keep earlier acks
// back.
const ackHold = 2 * time.Millisecond

// ackBatch holds the acks of a subscription's handled messages and sends
// them as one basic.ack with multiple set: acking each message costs the
// broker about as much as delivering it (on a 2-core machine, consuming
// with one ack per 20 messages runs at 1.5 times the rate of one ack per
// message). A subscription hands out one message at a time, so when a
// message is acked every earlier one on its channel is settled, and one
// ack of the latest tag covers all those held. Held acks are sent when max
// are held, ackHold after the first of them (the consume loop waits on
// due), before a nack, and before the channel closes.
type ackBatch struct {
	ch    *amqp091.Channel
	max   int
	last  uint64 // delivery tag of the latest held ack
	n     int    // acks held
	timer *time.Timer
}

func newAckBatch(ch *amqp091.Channel, max int) *ackBatch {
	b := &ackBatch{ch: ch, max: max, timer: time.NewTimer(ackHold)}
	b.timer.Stop()
	return b
}

// add holds the ack of tag, sending the held acks when max are held.
func (b *ackBatch) add(tag uint64) {
	b.last, b.n = tag, b.n+1
	if b.n == 1 {
		b.timer.Reset(ackHold)
	}
	if b.n >= b.max {
		b.flush()
	}
}

// due fires when the held acks are to be sent; nil when none are held.
func (b *ackBatch) due() <-chan time.Time {
	if b.n == 0 {
		return nil
	}
	return b.timer.C
}

// flush sends the held acks. An ack that fails (the channel is gone) leaves
// the messages to be redelivered: at least once.
func (b *ackBatch) flush() {
	if b.n == 0 {
		return
	}
	b.timer.Stop()
	_ = b.ch.Ack(b.last, true)
	b.n = 0
}
