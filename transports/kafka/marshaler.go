package kafka

import (
	"github.com/IBM/sarama"
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
)

// marshaler is watermill-kafka's DefaultMarshaler (metadata as record
// headers) plus the record key taken from metadata
// millrace.MetadataPartitionKey, so the hash partitioner puts every message
// of one key on one partition, where a group reads them in order.
//
// It is not wkafka.NewWithPartitioningMarshaler because that one always sets
// a key: an empty key hashes to one partition, so every unkeyed message would
// land on the same partition. Here an unkeyed message has no record key and
// is spread over the partitions.
type marshaler struct{ wkafka.DefaultMarshaler }

func (m marshaler) Marshal(topic string, msg *message.Message) (*sarama.ProducerMessage, error) {
	km, err := m.DefaultMarshaler.Marshal(topic, msg)
	if err != nil {
		return nil, err
	}
	if key := msg.Metadata.Get(millrace.MetadataPartitionKey); key != "" {
		km.Key = sarama.StringEncoder(key)
	}
	return km, nil
}
