package kafka_test

import (
	"bytes"
	"context"
	"maps"
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
	stamp := time.Date(2026, 3, 1, 9, 30, 0, 123e6, time.UTC)
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
		{
			name: "record timestamp becomes published_at, in UTC",
			rec:  sarama.ConsumerMessage{Topic: topic, Offset: 2, Timestamp: stamp.In(time.FixedZone("CEST", 2*3600)), Value: []byte("x")},
			id:   "kafka:orders/0/2", payload: "x", md: message.Metadata{millrace.MetadataPublishedAt: "2026-03-01T09:30:00.123Z"},
		},
		{
			name: "published_at header wins over record timestamp",
			rec: sarama.ConsumerMessage{Topic: topic, Offset: 2, Timestamp: stamp, Value: []byte("x"),
				Headers: []*sarama.RecordHeader{{Key: []byte(millrace.MetadataPublishedAt), Value: []byte("2026-02-28T00:00:00Z")}}},
			id: "kafka:orders/0/2", payload: "x", md: message.Metadata{millrace.MetadataPublishedAt: "2026-02-28T00:00:00Z"},
		},
		{
			name: "record timestamp at the epoch is a time",
			rec:  sarama.ConsumerMessage{Topic: topic, Offset: 2, Timestamp: time.UnixMilli(0), Value: []byte("x")},
			id:   "kafka:orders/0/2", payload: "x", md: message.Metadata{millrace.MetadataPublishedAt: "1970-01-01T00:00:00Z"},
		},
		{
			name: "no record timestamp (-1, as Sarama decodes it), no published_at",
			rec:  sarama.ConsumerMessage{Topic: topic, Offset: 2, Timestamp: time.Time{}.Add(5 * time.Millisecond), Value: []byte("x")},
			id:   "kafka:orders/0/2", payload: "x", md: message.Metadata{},
		},
		{
			name: "header values that are not UTF-8 are kept byte for byte",
			rec: sarama.ConsumerMessage{Topic: topic, Offset: 4, Value: []byte("x"),
				Headers: []*sarama.RecordHeader{
					{Key: []byte("trace-bin"), Value: []byte{0x00, 0xff, 0xfe, 0x80}},
					{Key: []byte("latin1"), Value: []byte("caf\xe9")},
					{Key: []byte("empty"), Value: []byte{}},
				}},
			id: "kafka:orders/0/4", payload: "x", md: message.Metadata{"trace-bin": "\x00\xff\xfe\x80", "latin1": "caf\xe9", "empty": ""},
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
			if !maps.Equal(msg.Metadata, tt.md) {
				t.Errorf("metadata %q, want %q", msg.Metadata, tt.md)
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

// consumeRaw reads the first n records of topic with franz-go's client, as
// a service in another language would.
func consumeRaw(t *testing.T, brokers []string, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %d of %d records of %s: %v", len(recs), n, topic, err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		recs = append(recs, fs.Records()...)
	}
	return recs
}

// TestForeignRecord_MetadataSurvivesARepublish: a record of another client
// with a key, a timestamp and a header that is not UTF-8 is delivered with
// the header's exact bytes, the key as partition_key and the timestamp as
// published_at; published again (as the poison queue and Delay publish a
// copy), it is a record with the same key, the same header bytes, and
// published_at, partition_key and the id as headers.
func TestForeignRecord_MetadataSurvivesARepublish(t *testing.T) {
	brokers := newCluster(t, 1)
	binary := []byte{0x00, 0xff, 0xc3, 0x28, 0x80}
	stamp := time.Date(2026, 3, 1, 9, 30, 0, 123e6, time.UTC)
	offsets := produceRaw(t, brokers, &kgo.Record{Topic: "in", Key: []byte("cust-1"), Value: []byte("v"), Timestamp: stamp,
		Headers: []kgo.RecordHeader{{Key: "trace-bin", Value: binary}, header("source", "legacy")}})
	tr := openTransport(t, testConfig(brokers))
	ch := transporttest.SubscribeGroup(t, tr, "g", "in")
	m := transporttest.Receive(t, ch, 20*time.Second)

	want := message.Metadata{
		"trace-bin":                   string(binary),
		"source":                      "legacy",
		millrace.MetadataPartitionKey: "cust-1",
		millrace.MetadataPublishedAt:  "2026-03-01T09:30:00.123Z",
	}
	if !maps.Equal(m.Metadata, want) {
		t.Fatalf("metadata %q, want %q", m.Metadata, want)
	}

	cp := message.NewMessage(m.UUID, m.Payload)
	cp.Metadata = maps.Clone(m.Metadata)
	if err := tr.Publisher().Publish("out", cp); err != nil {
		t.Fatal(err)
	}
	rec := consumeRaw(t, brokers, "out", 1)[0]
	headers := map[string][]byte{}
	for _, h := range rec.Headers {
		headers[h.Key] = h.Value
	}
	wantHeaders := map[string][]byte{"_watermill_message_uuid": []byte("kafka:in/0/" + itoa(offsets[0]))}
	for k, v := range want {
		wantHeaders[k] = []byte(v)
	}
	if !maps.EqualFunc(headers, wantHeaders, bytes.Equal) {
		t.Errorf("republished headers %q, want %q", headers, wantHeaders)
	}
	if string(rec.Key) != "cust-1" || string(rec.Value) != "v" {
		t.Errorf("republished key %q value %q, want cust-1 v", rec.Key, rec.Value)
	}
}
