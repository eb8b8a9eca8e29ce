package kafka

import (
	"strconv"
	"time"

	"github.com/IBM/sarama"
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/transports"
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

// Unmarshal turns any record into a message; it never fails. This matters:
// watermill-kafka stops consuming a partition when Unmarshal returns an
// error, and after the next rebalance the group starts again at the same
// record, so one unreadable record would block its partition for good
// (Watermill issues #184, #224).
//
// Every header becomes metadata (for a repeated header key the last value
// wins; a header with an empty key is dropped), except
// _watermill_message_uuid, which is the message id. A header value is kept
// byte for byte, valid UTF-8 or not: a Go string holds any bytes, and Marshal
// writes them back unchanged, so a retry, a poisoned copy or a replay carries
// exactly what the record carried (see the package doc on binary headers).
// A record without an id header (or with an empty one), as other clients
// publish it, gets the id "kafka:<topic>/<partition>/<offset>"
// (transports.EnsureUUID): the same on every redelivery, so deduplication
// recognises it. Without a partition_key header, a record key becomes
// metadata [millrace.MetadataPartitionKey], so a retry or a poisoned copy
// keeps the key's partition; without a published_at header, a record
// timestamp (Kafka 0.10 and later) becomes [millrace.MetadataPublishedAt], in
// RFC 3339 with nanoseconds, UTC, as millrace writes it. The payload is the
// record value as is (nil for a tombstone).
//
// It is written here rather than wrapping DefaultMarshaler.Unmarshal to read
// the headers once, on the hot path, with nothing allocated beyond the
// message and its metadata (and, for a foreign record, the id and the
// published_at that millrace's own records carry).
func (marshaler) Unmarshal(rec *sarama.ConsumerMessage) (*message.Message, error) {
	return unmarshal(rec), nil
}

func unmarshal(rec *sarama.ConsumerMessage) *message.Message {
	var id string
	md := make(message.Metadata, len(rec.Headers)+2)
	for _, h := range rec.Headers {
		if h == nil || len(h.Key) == 0 {
			continue
		}
		if string(h.Key) == wkafka.UUIDHeaderKey {
			id = string(h.Value)
			continue
		}
		md[metadataKey(h.Key)] = string(h.Value)
	}
	if len(rec.Key) > 0 {
		if _, ok := md[millrace.MetadataPartitionKey]; !ok {
			md[millrace.MetadataPartitionKey] = string(rec.Key)
		}
	}
	// Sarama gives a record without timestamp (-1, or a message format
	// before Kafka 0.10) a time before the Unix epoch.
	if rec.Timestamp.UnixMilli() >= 0 {
		if _, ok := md[millrace.MetadataPublishedAt]; !ok {
			md[millrace.MetadataPublishedAt] = rec.Timestamp.UTC().Format(time.RFC3339Nano)
		}
	}
	msg := message.NewMessage(id, rec.Value)
	msg.Metadata = md
	if id == "" {
		transports.EnsureUUID(msg, "kafka", recordKey(rec))
	}
	return msg
}

// recordKey is "<topic>/<partition>/<offset>", the record's place in the
// log, which no redelivery changes.
func recordKey(rec *sarama.ConsumerMessage) string {
	b := make([]byte, 0, len(rec.Topic)+24)
	b = append(b, rec.Topic...)
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(rec.Partition), 10)
	b = append(b, '/')
	b = strconv.AppendInt(b, rec.Offset, 10)
	return string(b)
}

// metadataKey returns header key k as a metadata key: for the envelope keys
// that millrace writes on every message, the constant, so that reading them
// allocates nothing; for any other key, a new string.
func metadataKey(k []byte) string {
	switch string(k) {
	case millrace.MetadataType:
		return millrace.MetadataType
	case millrace.MetadataCorrelationID:
		return millrace.MetadataCorrelationID
	case millrace.MetadataCausationID:
		return millrace.MetadataCausationID
	case millrace.MetadataPublishedBy:
		return millrace.MetadataPublishedBy
	case millrace.MetadataPublishedAt:
		return millrace.MetadataPublishedAt
	case millrace.MetadataPartitionKey:
		return millrace.MetadataPartitionKey
	case millrace.MetadataContentType:
		return millrace.MetadataContentType
	}
	return string(k)
}
