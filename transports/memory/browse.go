package memory

import (
	"bytes"
	"context"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Browse returns copies of the messages topic retains for new consumer
// groups, oldest first, without consuming them: no group's pending messages
// change. These are the topic's last Config.Retention published messages,
// acked or not (with Retention 0, none); messages given to Delay are not
// among them. The copies have the published UUID, a copy of the payload and
// of the metadata.
//
// Browse treats the topic as a log, like a Kafka topic read from its start:
// it is how operator tools read a dead-letter topic. A topic nothing was
// ever published to or subscribed to has no messages. Browse returns ctx's
// error if ctx is done and one wrapping [transports.ErrClosed] after Close.
func (b *Broker) Browse(ctx context.Context, topic string) ([]*message.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.RLock()
	t, closed := b.topics[topic], b.closed
	b.mu.RUnlock()
	if closed {
		return nil, errClosed
	}
	if t == nil {
		return nil, nil
	}
	recs, err := t.retained()
	if err != nil {
		return nil, err
	}
	// Records are immutable once published, so the copies are made outside
	// the topic's mutex.
	out := make([]*message.Message, len(recs))
	for i, r := range recs {
		m := r.newMessage()
		m.Payload = bytes.Clone(r.payload)
		out[i] = m
	}
	return out, nil
}

// retained returns the topic's history, oldest first.
func (t *topic) retained() ([]*record, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, errClosed
	}
	recs := make([]*record, 0, len(t.hist.recs))
	t.hist.each(func(r *record) { recs = append(recs, r) })
	return recs, nil
}
