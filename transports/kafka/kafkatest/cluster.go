package kafkatest

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// NewCluster starts an in-process Kafka-protocol broker for the test and
// returns its addresses; it stops when the test ends. Topics are created on
// first use with partitions partitions, as a broker with
// auto.create.topics.enable would. opts are passed to kfake after those
// defaults.
func NewCluster(t testing.TB, partitions int, opts ...kfake.Opt) []string {
	t.Helper()
	c, err := Start(partitions, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// Start is NewCluster for code outside tests (a benchmark command): the
// caller closes the cluster.
func Start(partitions int, opts ...kfake.Opt) (*kfake.Cluster, error) {
	return kfake.NewCluster(append([]kfake.Opt{
		kfake.NumBrokers(1),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(partitions),
	}, opts...)...)
}
