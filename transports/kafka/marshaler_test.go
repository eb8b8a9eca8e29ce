package kafka_test

import (
	"testing"

	"github.com/IBM/sarama"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/transports/kafka"
)

// TestUnmarshal_EnvelopeKeysAllocateNothing: reading a record as millrace
// publishes it (the id and the seven envelope headers) allocates the
// message, its metadata and the header values, and not the envelope's keys:
// the same record with seven other keys allocates seven times more.
func TestUnmarshal_EnvelopeKeysAllocateNothing(t *testing.T) {
	keys := []string{
		millrace.MetadataType, millrace.MetadataCorrelationID, millrace.MetadataCausationID,
		millrace.MetadataPublishedBy, millrace.MetadataPublishedAt, millrace.MetadataPartitionKey,
		millrace.MetadataContentType,
	}
	record := func(prefix string) *sarama.ConsumerMessage {
		headers := []*sarama.RecordHeader{{Key: []byte("_watermill_message_uuid"), Value: []byte("0b7e8f0e-6f1c-4f5e-9a57-1d2c3b4a5f60")}}
		for _, k := range keys {
			headers = append(headers, &sarama.RecordHeader{Key: []byte(prefix + k), Value: []byte("value of " + k)})
		}
		// No record key nor timestamp: the other keys' record gets no
		// partition_key nor published_at from them.
		return &sarama.ConsumerMessage{Topic: "orders", Value: []byte("{}"), Headers: headers}
	}
	envelope, other := record(""), record("x-")
	base := testing.AllocsPerRun(200, func() { _, _ = kafka.Unmarshal(envelope) })
	more := testing.AllocsPerRun(200, func() { _, _ = kafka.Unmarshal(other) })
	if more-base != float64(len(keys)) {
		t.Errorf("a record with the envelope's keys allocates %v times, with %d other keys %v: want %d more, one per key",
			base, len(keys), more, len(keys))
	}
}
