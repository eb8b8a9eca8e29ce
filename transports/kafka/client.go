package kafka

import (
	"fmt"
	"time"

	"github.com/IBM/sarama"
)

// client returns the transport's own Sarama client, for reads that are not
// publishing or consuming in a group (Lag, Browse); it is opened on first use
// and closed by Close. It never creates a topic: asking about a topic that
// does not exist is an error (sarama.ErrUnknownTopicOrPartition), not a new
// empty topic.
func (t *Transport) client() (sarama.Client, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.subs.Closed() {
		return nil, errClosed
	}
	if t.meta != nil && !t.meta.Closed() {
		return t.meta, nil
	}
	sc := *t.sarama // a shallow copy shares TLS, SASL and the metric registry
	sc.Metadata.AllowAutoTopicCreation = false
	// No background metadata refresh: Lag and Browse refresh the topic
	// they read (topicPartitions), so they see new partitions at once, and
	// no refresh can race with Close.
	sc.Metadata.RefreshFrequency = 0
	// Browse stops reading a partition at its high watermark, and closing
	// a partition consumer waits for its fetch in flight, which the broker
	// holds up to MaxWaitTime when there is nothing more to read.
	sc.Consumer.MaxWaitTime = 100 * time.Millisecond
	c, err := sarama.NewClient(t.cfg.Brokers, &sc)
	if err != nil {
		return nil, fmt.Errorf("kafka: connect to %v: %w", t.cfg.Brokers, explain(err))
	}
	t.meta = c
	return c, nil
}

// topicPartitions refreshes c's metadata of topic and returns its
// partitions. A topic that does not exist is an error wrapping
// sarama.ErrUnknownTopicOrPartition.
func topicPartitions(c sarama.Client, topic string) ([]int32, error) {
	if err := c.RefreshMetadata(topic); err != nil {
		return nil, err
	}
	return c.Partitions(topic)
}
