package kafka_test

import (
	"context"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/transports/kafka"
	"github.com/millrace/millrace/transports/transporttest"
)

// produceRaw writes records with franz-go's client, as a service that
// knows nothing of Watermill (nor of Sarama) does, and returns their offsets.
func produceRaw(t *testing.T, brokers []string, recs ...*kgo.Record) []int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res := cl.ProduceSync(ctx, recs...)
	if err := res.FirstErr(); err != nil {
		t.Fatal(err)
	}
	offsets := make([]int64, len(res))
	for i, r := range res {
		offsets[i] = r.Record.Offset
	}
	return offsets
}

func header(k, v string) kgo.RecordHeader {
	return kgo.RecordHeader{Key: k, Value: []byte(v)}
}

func TestUnmarshal(t *testing.T) {
	const topic = "orders"
	tests := []struct {
		name    string
		rec     sarama.ConsumerMessage
		id      string
		payload string
		md      message.Metadata
	}{
		{
			name: "watermill record",
			rec: sarama.ConsumerMessage{Topic: topic, Partition: 1, Offset: 7, Value: []byte("p"),
				Headers: []*sarama.RecordHeader{{Key: []byte("_watermill_message_uuid"), Value: []byte("id-1")}, {Key: []byte("a"), Value: []byte("b")}}},
			id: "id-1", payload: "p", md: message.Metadata{"a": "b"},
		},
		{
			name: "foreign record without headers",
			rec:  sarama.ConsumerMessage{Topic: topic, Partition: 2, Offset: 41, Value: []byte{0xff, 0x00}},
			id:   "kafka:orders/2/41", payload: "\xff\x00", md: message.Metadata{},
		},
		{
			name: "empty id header, odd headers, tombstone",
			rec: sarama.ConsumerMessage{Topic: topic, Partition: 0, Offset: 3, Value: nil,
				Headers: []*sarama.RecordHeader{
					nil,
					{Key: []byte("_watermill_message_uuid"), Value: nil},
					{Key: nil, Value: []byte("no key")},
					{Key: []byte("dup"), Value: []byte("1")},
					{Key: []byte("dup"), Value: []byte("2")},
					{Key: []byte("bin"), Value: []byte{0xc3, 0x28}},
				}},
			id: "kafka:orders/0/3", payload: "", md: message.Metadata{"dup": "2", "bin": "\xc3\x28"},
		},
		{
			name: "record key becomes partition key",
			rec:  sarama.ConsumerMessage{Topic: topic, Offset: 1, Key: []byte("cust-9"), Value: []byte("x")},
			id:   "kafka:orders/0/1", payload: "x", md: message.Metadata{millrace.MetadataPartitionKey: "cust-9"},
		},
		{
			name: "partition key header wins over record key",
			rec: sarama.ConsumerMessage{Topic: topic, Offset: 1, Key: []byte("raw"), Value: []byte("x"),
				Headers: []*sarama.RecordHeader{{Key: []byte(millrace.MetadataPartitionKey), Value: []byte("k")}}},
			id: "kafka:orders/0/1", payload: "x", md: message.Metadata{millrace.MetadataPartitionKey: "k"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg, err := kafka.Unmarshal(&tt.rec)
			if err != nil {
				t.Fatal(err)
			}
			if msg.UUID != tt.id || string(msg.Payload) != tt.payload {
				t.Errorf("got %q %q, want %q %q", msg.UUID, msg.Payload, tt.id, tt.payload)
			}
			if len(msg.Metadata) != len(tt.md) {
				t.Errorf("metadata %v, want %v", msg.Metadata, tt.md)
			}
			for k, v := range tt.md {
				if msg.Metadata.Get(k) != v {
					t.Errorf("metadata %v, want %v", msg.Metadata, tt.md)
				}
			}
		})
	}
}

// TestSubscriber_ForeignRecordsDeliveredWithStableIDs publishes records as a
// non-Watermill client would (no id header, odd headers, a tombstone) ahead
// of a Watermill message on one partition: all are delivered in order, none
// blocks the partition, and a nacked foreign record comes back with the same
// id.
func TestSubscriber_ForeignRecordsDeliveredWithStableIDs(t *testing.T) {
	brokers := newCluster(t, 1)
	const topic = "foreign"
	offsets := produceRaw(t, brokers,
		&kgo.Record{Topic: topic, Key: []byte("k"), Value: []byte("plain"),
			Headers: []kgo.RecordHeader{header("source", "legacy"), header("dup", "1"), header("dup", "2")}},
		&kgo.Record{Topic: topic, Headers: []kgo.RecordHeader{header("_watermill_message_uuid", "")}},
	)
	tr := openTransport(t, testConfig(brokers))
	if err := tr.Publisher().Publish(topic, message.NewMessage("wm-1", []byte("native"))); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sub, err := tr.Subscriber("g")
	if err != nil {
		t.Fatal(err)
	}
	ch, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	first := transporttest.Next(t, ch, 20*time.Second)
	wantID := "kafka:foreign/0/" + itoa(offsets[0])
	if first.UUID != wantID || string(first.Payload) != "plain" ||
		first.Metadata.Get("source") != "legacy" || first.Metadata.Get("dup") != "2" ||
		first.Metadata.Get(millrace.MetadataPartitionKey) != "k" {
		t.Fatalf("got %s %q %v, want id %s, payload plain, the headers and the key", first.UUID, first.Payload, first.Metadata, wantID)
	}
	first.Nack()
	if again := transporttest.Next(t, ch, 20*time.Second); again.UUID != wantID {
		t.Fatalf("redelivered as %s, want %s", again.UUID, wantID)
	} else {
		again.Ack()
	}

	tomb := transporttest.Next(t, ch, 20*time.Second)
	if want := "kafka:foreign/0/" + itoa(offsets[1]); tomb.UUID != want || len(tomb.Payload) != 0 {
		t.Fatalf("got %s %q, want %s with no payload", tomb.UUID, tomb.Payload, want)
	}
	tomb.Ack()

	if native := transporttest.Next(t, ch, 20*time.Second); native.UUID != "wm-1" || string(native.Payload) != "native" {
		t.Fatalf("got %s %q, want wm-1", native.UUID, native.Payload)
	} else {
		native.Ack()
	}
}
