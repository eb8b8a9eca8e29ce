package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/IBM/sarama"
)

// Lag returns, for every partition of topic, how many messages consumer
// group group has still to consume: the partition's high watermark (the
// offset the next record will get) minus the group's committed offset. A
// partition on which the group has committed nothing counts as the group
// would start there: from the oldest retained record with initial_offset
// "oldest", as 0 with "newest". Lag is never negative.
//
// Offsets are committed after ack, so a message being handled counts as not
// consumed. The figures are a snapshot: high watermarks and commits are read
// one after the other, not atomically. Lag joins no group and commits
// nothing. Subscriber(group) also consumes the group's retry topic in group
// "<group>.retry": its backlog is Lag(ctx, group+".retry", RetryTopic(topic,
// group)).
//
// A topic that does not exist is an error wrapping
// sarama.ErrUnknownTopicOrPartition. ctx is checked between requests; each
// request is bounded by the client's network timeouts.
func (t *Transport) Lag(ctx context.Context, group, topic string) (map[int32]int64, error) {
	if group == "" || topic == "" {
		return nil, errors.New("kafka: lag needs a consumer group and a topic")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := t.client()
	if err != nil {
		return nil, err
	}
	parts, err := topicPartitions(c, topic)
	if err != nil {
		return nil, fmt.Errorf("kafka: lag of group %q on topic %q: %w", group, topic, err)
	}
	committed, err := committedOffsets(c, t.sarama.Version, group, topic, parts)
	if err != nil {
		return nil, fmt.Errorf("kafka: lag of group %q on topic %q: %w", group, topic, err)
	}

	lag := make(map[int32]int64, len(parts))
	for _, p := range parts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		high, err := c.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return nil, fmt.Errorf("kafka: lag: high watermark of %s/%d: %w", topic, p, err)
		}
		from, ok := committed[p]
		if !ok {
			if t.cfg.InitialOffset == "newest" {
				from = high
			} else if from, err = c.GetOffset(topic, p, sarama.OffsetOldest); err != nil {
				return nil, fmt.Errorf("kafka: lag: oldest offset of %s/%d: %w", topic, p, err)
			}
		}
		lag[p] = max(high-from, 0)
	}
	return lag, nil
}

// committedOffsets returns group's committed offset of each partition of
// topic that has one.
func committedOffsets(c sarama.Client, v sarama.KafkaVersion, group, topic string, parts []int32) (map[int32]int64, error) {
	coord, err := c.Coordinator(group)
	if err != nil {
		return nil, fmt.Errorf("find group coordinator: %w", err)
	}
	resp, err := coord.FetchOffset(sarama.NewOffsetFetchRequest(v, group, map[string][]int32{topic: parts}))
	if err != nil {
		return nil, fmt.Errorf("fetch committed offsets: %w", err)
	}
	out := make(map[int32]int64, len(parts))
	switch {
	case errors.Is(resp.Err, sarama.ErrGroupIDNotFound):
		// Kafka answers a group it does not know with offsets -1; some
		// brokers (kfake) with this error. Either way: nothing committed.
		return out, nil
	case !errors.Is(resp.Err, sarama.ErrNoError):
		return nil, fmt.Errorf("fetch committed offsets: %w", resp.Err)
	}
	for _, p := range parts {
		b := resp.GetBlock(topic, p)
		if b == nil {
			continue
		}
		if !errors.Is(b.Err, sarama.ErrNoError) {
			return nil, fmt.Errorf("committed offset of %s/%d: %w", topic, p, b.Err)
		}
		if b.Offset >= 0 {
			out[p] = b.Offset
		}
	}
	return out, nil
}
