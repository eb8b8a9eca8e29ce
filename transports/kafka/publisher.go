package kafka

import (
	"errors"
	"fmt"
	"sync"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
)

// syncPublisher writes messages through one Sarama sync producer. Unlike
// watermill-kafka's Publisher, which waits for each message of a call
// before it sends the next, it hands a call's messages to the producer at
// once (SendMessages), so the producer batches them per partition: a call
// of 500 messages costs a few round trips, not 500. Each partition's
// messages keep their order (one request in flight per broker connection
// when idempotent).
type syncPublisher struct {
	producer  sarama.SyncProducer
	marshaler marshaler

	mu     sync.RWMutex // Publish holds it for reading, Close for writing
	closed bool
}

// errPublisherClosed is Publish's error after Close.
var errPublisherClosed = errors.New("kafka: publisher closed")

func newSyncPublisher(brokers []string, sc *sarama.Config) (*syncPublisher, error) {
	p, err := sarama.NewSyncProducer(brokers, sc)
	if err != nil {
		return nil, err
	}
	return &syncPublisher{producer: p}, nil
}

// Publish returns once every message is written with the configured acks,
// or an error naming the first message that was not.
func (p *syncPublisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return errPublisherClosed
	}
	switch len(msgs) {
	case 0:
		return nil
	case 1:
		km, err := p.marshaler.Marshal(topic, msgs[0])
		if err != nil {
			return fmt.Errorf("kafka: marshal message %s: %w", msgs[0].UUID, err)
		}
		if _, _, err := p.producer.SendMessage(km); err != nil {
			return fmt.Errorf("kafka: produce message %s to %s: %w", msgs[0].UUID, topic, err)
		}
		return nil
	}
	batch := make([]*sarama.ProducerMessage, len(msgs))
	for i, m := range msgs {
		km, err := p.marshaler.Marshal(topic, m)
		if err != nil {
			return fmt.Errorf("kafka: marshal message %s: %w", m.UUID, err)
		}
		km.Metadata = m.UUID
		batch[i] = km
	}
	err := p.producer.SendMessages(batch)
	if err == nil {
		return nil
	}
	var pe sarama.ProducerErrors
	if errors.As(err, &pe) && len(pe) > 0 {
		id, _ := pe[0].Msg.Metadata.(string)
		return fmt.Errorf("kafka: %d of %d messages to %s not produced, message %s first: %w", len(pe), len(batch), topic, id, pe[0].Err)
	}
	return fmt.Errorf("kafka: produce %d messages to %s: %w", len(batch), topic, err)
}

// Close closes the producer, once Publish calls in flight have returned;
// later calls fail.
func (p *syncPublisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	return p.producer.Close()
}
