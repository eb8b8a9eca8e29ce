package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
)

// Browse returns the messages of topic that are in the log when it is
// called, from the oldest retained record of every partition up to the
// partition's high watermark at that moment; later messages are not waited
// for. It joins no consumer group and commits nothing, so no group's
// position moves: it is the dead-letter tools' dlq.Browser.
//
// Each partition's messages come oldest first. Partitions are merged by
// record timestamp (the publish time; ties go to the lower partition), and a
// partition's order is never broken for it, so with more than one partition
// the result is in publish order as far as the producers' clocks agree.
// Messages are read as Subscriber delivers them (ids of foreign records are
// "kafka:<topic>/<partition>/<offset>"). A topic that does not exist yet has
// no messages. Browse reads the whole topic into memory: it is meant for
// dead-letter topics, not for large ones.
func (t *Transport) Browse(ctx context.Context, topic string) ([]*message.Message, error) {
	if topic == "" {
		return nil, errors.New("kafka: browse needs a topic")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := t.client()
	if err != nil {
		return nil, err
	}
	parts, err := topicPartitions(c, topic)
	if errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("kafka: browse %q: %w", topic, err)
	}
	consumer, err := sarama.NewConsumerFromClient(c) // its Close leaves c open
	if err != nil {
		return nil, fmt.Errorf("kafka: browse %q: %w", topic, err)
	}
	defer func() { _ = consumer.Close() }()

	// The partitions are read concurrently, each by its own partition
	// consumer of the one consumer; the first failure stops the others.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	logs := make([][]record, len(parts))
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	for i, p := range parts {
		wg.Go(func() {
			logs[i], errs[i] = readPartition(ctx, c, consumer, topic, p)
			if errs[i] != nil {
				cancel()
				errs[i] = fmt.Errorf("kafka: browse %s/%d: %w", topic, p, errs[i])
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	total := 0
	for _, l := range logs {
		total += len(l)
	}
	return mergeByTime(logs, total), nil
}

// record is a browsed message with its record timestamp.
type record struct {
	msg *message.Message
	at  time.Time
}

// readPartition reads partition p of topic from its oldest offset up to its
// high watermark as it is now.
func readPartition(ctx context.Context, c sarama.Client, consumer sarama.Consumer, topic string, p int32) ([]record, error) {
	oldest, err := c.GetOffset(topic, p, sarama.OffsetOldest)
	if err != nil {
		return nil, fmt.Errorf("oldest offset: %w", err)
	}
	high, err := c.GetOffset(topic, p, sarama.OffsetNewest)
	if err != nil {
		return nil, fmt.Errorf("high watermark: %w", err)
	}
	if oldest >= high {
		return nil, nil
	}
	pc, err := consumer.ConsumePartition(topic, p, oldest)
	if err != nil {
		return nil, err
	}
	defer func() { _ = pc.Close() }() // drains and closes its channels

	recs := make([]record, 0, high-oldest)
	for {
		select {
		case rec, ok := <-pc.Messages():
			if !ok {
				return nil, errors.New("partition consumer closed")
			}
			recs = append(recs, record{msg: unmarshal(rec), at: rec.Timestamp})
			// The last record before the watermark ends the read. (A
			// transaction's control record is never delivered: a topic
			// that ends with one is read until ctx ends.)
			if rec.Offset >= high-1 {
				return recs, nil
			}
		case err := <-pc.Errors():
			if err != nil {
				return nil, err
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// mergeByTime merges the partitions' logs into one slice, each time taking
// the head with the earliest timestamp (the lower partition on a tie), so
// every partition keeps its order.
func mergeByTime(logs [][]record, total int) []*message.Message {
	out := make([]*message.Message, 0, total)
	heads := make([]int, len(logs))
	for len(out) < total {
		best := -1
		for i, l := range logs {
			if heads[i] == len(l) {
				continue
			}
			if best < 0 || l[heads[i]].at.Before(logs[best][heads[best]].at) {
				best = i
			}
		}
		out = append(out, logs[best][heads[best]].msg)
		heads[best]++
	}
	return out
}
