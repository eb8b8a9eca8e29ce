package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/IBM/sarama"

	"github.com/millrace/millrace/transports"
)

var (
	_ transports.Backlogger    = (*Transport)(nil)
	_ transports.HealthChecker = (*Transport)(nil)
)

// Backlog returns how many messages of topic consumer group group has
// still to consume: its [Transport.Lag] summed over the partitions. Its
// delayed retries, in the retry topic, are not counted.
// With group "" it returns how many records topic retains, each
// partition's high watermark minus its oldest offset (the size of a
// poison topic; records deleted by compaction are counted). A topic that
// does not exist holds none. It implements [transports.Backlogger].
func (t *Transport) Backlog(ctx context.Context, topic, group string) (int64, error) {
	if topic == "" {
		return 0, errors.New("kafka: backlog: topic must not be empty")
	}
	var (
		total int64
		err   error
	)
	if group != "" {
		var lag map[int32]int64
		lag, err = t.Lag(ctx, group, topic)
		for _, n := range lag {
			total += n
		}
	} else {
		total, err = t.retained(ctx, topic)
	}
	if errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
		return 0, nil
	}
	return total, err
}

// retained returns how many records topic's partitions hold.
func (t *Transport) retained(ctx context.Context, topic string) (int64, error) {
	c, err := t.client()
	if err != nil {
		return 0, err
	}
	parts, err := topicPartitions(c, topic)
	if err != nil {
		return 0, fmt.Errorf("kafka: backlog of topic %q: %w", topic, err)
	}
	var total int64
	for _, p := range parts {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		high, err := c.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return 0, fmt.Errorf("kafka: backlog: high watermark of %s/%d: %w", topic, p, err)
		}
		low, err := c.GetOffset(topic, p, sarama.OffsetOldest)
		if err != nil {
			return 0, fmt.Errorf("kafka: backlog: oldest offset of %s/%d: %w", topic, p, err)
		}
		total += max(high-low, 0)
	}
	return total, nil
}

// CheckHealth asks the brokers for the cluster's metadata (which broker is
// the controller), through the transport's own client: nil when one
// answers, else what failed. Each connection attempt is bounded by
// connect_timeout; CheckHealth returns when ctx ends, even if the request
// still runs. It implements [transports.HealthChecker].
func (t *Transport) CheckHealth(ctx context.Context) error {
	c, err := t.client()
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.RefreshController()
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("kafka: no broker of %v answers: %w", t.cfg.Brokers, explain(err))
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("kafka: no answer from the brokers %v: %w", t.cfg.Brokers, ctx.Err())
	}
}
