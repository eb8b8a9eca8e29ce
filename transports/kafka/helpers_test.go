package kafka_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strconv"
	"testing"

	"github.com/IBM/sarama"
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/millrace/millrace/transports"
	"github.com/millrace/millrace/transports/kafka"
	"github.com/millrace/millrace/transports/kafka/kafkatest"
)

// newCluster starts an in-process Kafka-protocol broker that creates topics
// on first use with partitions partitions, and stops it when the test ends.
func newCluster(t *testing.T, partitions int, opts ...kfake.Opt) []string {
	t.Helper()
	return kafkatest.NewCluster(t, partitions, opts...)
}

// testConfig is the default config pointed at brokers, with fast consumer
// group timings.
func testConfig(brokers []string) *kafka.Config {
	cfg := kafka.DefaultConfig()
	cfg.Brokers = brokers
	kafka.FastGroups(cfg)
	return cfg
}

// testLogger discards logs unless KAFKA_TEST_LOG=debug.
func testLogger() *slog.Logger {
	if os.Getenv("KAFKA_TEST_LOG") == "debug" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// openTransport opens a transport on cfg and closes it when the test ends
// (before the cluster, which was started first).
func openTransport(t *testing.T, cfg *kafka.Config) *kafka.Transport {
	t.Helper()
	tr, err := kafka.Open(context.Background(), *cfg, transports.Deps{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tr.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return tr
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// partitionOf returns the partition a delivered message came from.
func partitionOf(m *message.Message) (int32, bool) {
	return wkafka.MessagePartitionFromCtx(m.Context())
}

// partitionKeys returns a partition key for each of the partitions of
// topic, as the producer's hash partitioner places them.
func partitionKeys(t *testing.T, topic string, partitions int32) map[int32]string {
	t.Helper()
	part := sarama.NewHashPartitioner(topic)
	keys := map[int32]string{}
	for i := 0; int32(len(keys)) < partitions; i++ {
		key := "k" + itoa(int64(i))
		p, err := part.Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(key)}, partitions)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := keys[p]; !ok {
			keys[p] = key
		}
	}
	return keys
}
