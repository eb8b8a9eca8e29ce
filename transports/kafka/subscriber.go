package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/transports"
)

// MetadataRetryDueAt is the metadata key of a message on a retry topic: when
// it is due, RFC 3339 with nanoseconds, UTC. Delay sets it; Subscriber holds
// the message until then.
const MetadataRetryDueAt = "retry_due_at"

// RetryTopic returns the topic on which Delay parks messages of topic for
// consumer group group: "<topic>.retry.<group>". Only that group reads it.
func RetryTopic(topic, group string) string { return topic + ".retry." + group }

// subscriber consumes in one consumer group. Each Subscribe(topic) consumes
// topic and, for a named group, the group's retry topic too, and merges both
// into one channel. A retry-topic message is handed over only when its
// retry_due_at has passed: until then the partition it came from waits (the
// watermill-kafka consumer delivers the next message of a partition only
// after the previous one is acked), while other partitions and the main topic
// go on.
//
// The retry topic is read in Kafka consumer group "<group>.retry", not
// "<group>": a rebalance waits for every member to let go of the message it
// holds, and a held retry message is let go only when due. In a group of
// their own, held retries can delay only rebalances of the retry topic, never
// the group's main topic.
type subscriber struct {
	group string
	inner *wkafka.Subscriber // topic, in group
	retry *wkafka.Subscriber // retry topic, in group + ".retry"; nil for group ""

	mu      sync.Mutex
	closed  bool
	release func() bool    // of an ephemeral subscriber: stops the context.AfterFunc that closes it
	merging sync.WaitGroup // one per merged subscription, until its channel is closed

	// handed holds the messages handed over and not yet settled, each
	// with the context watermill-kafka gave it, which ends once the
	// consumer has dealt with the message's ack or nack (see settle).
	handedMu sync.Mutex
	handed   map[*message.Message]context.Context
	sweepAt  int // size of handed at which settled entries are removed
}

var _ transports.PartitionedSubscriber = (*subscriber)(nil)

// OrdersByPartition marks subscriber as a transports.PartitionedSubscriber:
// watermill-kafka hands out one message per assigned partition at once.
func (s *subscriber) OrdersByPartition() {}

// minSweep is the smallest size of subscriber.handed worth sweeping.
const minSweep = 64

func (s *subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if s.group == "" {
		ch, err := s.inner.Subscribe(ctx, topic)
		if err != nil && s.isClosed() {
			return nil, fmt.Errorf("%w (%w)", errClosed, err)
		}
		if err != nil {
			return nil, fmt.Errorf("kafka: subscribe to %q: %w", topic, explain(err))
		}
		return ch, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	// Both subscriptions end with ctx, with Close, or (if the second
	// cannot start) at once.
	ctx, cancel := context.WithCancel(ctx)
	main, err := s.inner.Subscribe(ctx, topic)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("kafka: subscribe to %q in group %q: %w", topic, s.group, explain(err))
	}
	retry, err := s.retry.Subscribe(ctx, RetryTopic(topic, s.group))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("kafka: subscribe to %q in group %q: %w", RetryTopic(topic, s.group), s.group+".retry", explain(err))
	}

	out := make(chan *message.Message)
	s.merging.Add(1)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for msg := range main {
			s.handOver(out, msg)
		}
	}()
	go func() {
		defer wg.Done()
		for msg := range retry {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if holdUntilDue(msg) {
					s.handOver(out, msg)
				}
			}()
		}
	}()
	go func() {
		wg.Wait()
		cancel()
		close(out)
		s.merging.Done()
	}()
	return out, nil
}

// handOver sends msg to out unless msg's context ends first (its
// subscription was cancelled or the subscriber closed); such a message was
// not acked and is consumed again later. A message handed over is tracked
// until settled (see settle).
func (s *subscriber) handOver(out chan<- *message.Message, msg *message.Message) {
	ctx := msg.Context()
	s.handedMu.Lock()
	if s.handed == nil {
		s.handed = make(map[*message.Message]context.Context)
	}
	// Forget the messages the consumer is done with, now and then rather
	// than on every message: watermill-kafka has at most one message per
	// partition out, so after a sweep the map holds about that many.
	if len(s.handed) >= s.sweepAt {
		for m, c := range s.handed {
			if c.Err() != nil {
				delete(s.handed, m)
			}
		}
		s.sweepAt = max(minSweep, 2*len(s.handed))
	}
	s.handed[msg] = ctx
	s.handedMu.Unlock()
	select {
	case out <- msg:
	case <-ctx.Done():
	}
}

// settleTimeout bounds how long Close waits for acks to be recorded.
const settleTimeout = 2 * time.Second

// settle waits until watermill-kafka has recorded every ack given so far.
// Its consumer sees an ack and a close at the same moment as two ready
// cases of one select: were the subscriber closed right after a handler
// acked (as a graceful shutdown does), it could pick the close, leave the
// offset unmarked and have the acked message delivered again. It ends the
// message's context once it has marked the offset, so waiting for the
// contexts of the acked messages is enough.
func (s *subscriber) settle() {
	s.handedMu.Lock()
	var pending []context.Context
	for m, c := range s.handed {
		select {
		case <-m.Acked():
			pending = append(pending, c)
		default:
		}
	}
	s.handedMu.Unlock()
	if len(pending) == 0 {
		return
	}
	timeout := time.NewTimer(settleTimeout)
	defer timeout.Stop()
	for _, c := range pending {
		select {
		case <-c.Done():
		case <-timeout.C:
			return
		}
	}
}

// holdUntilDue waits until msg's retry_due_at and reports whether it may be
// handed over (false: its context ended meanwhile). A message without a
// valid due time is due at once.
func holdUntilDue(msg *message.Message) bool {
	due, err := time.Parse(time.RFC3339Nano, msg.Metadata.Get(MetadataRetryDueAt))
	if err != nil {
		return true
	}
	wait := time.Until(due)
	if wait <= 0 {
		return true
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-msg.Context().Done():
		return false
	}
}

// isClosed reports whether Close has been called.
func (s *subscriber) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close stops every subscription, waits for their consumers to leave the
// group and closes their channels before it returns. Messages acked before
// Close have their offsets committed; unacked ones are delivered again
// later, to this group. It is safe to call more than once.
func (s *subscriber) Close() error {
	s.mu.Lock()
	s.closed = true
	release := s.release
	s.mu.Unlock()
	if release != nil {
		release()
	}
	s.settle()
	err := s.inner.Close()
	if s.retry != nil {
		err = errors.Join(err, s.retry.Close())
	}
	// The inner channels are closed now and held retries see their
	// contexts end, so the merges finish promptly.
	s.merging.Wait()
	return err
}
