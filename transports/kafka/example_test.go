package kafka_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/millrace/millrace/transports"
	"github.com/millrace/millrace/transports/kafka"
)

// exampleTransport opens a transport on an in-process broker; close both
// with the returned function.
func exampleTransport() (*kafka.Transport, func()) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(1))
	if err != nil {
		panic(err)
	}
	cfg := kafka.DefaultConfig()
	cfg.Brokers = cluster.ListenAddrs()
	tr, err := kafka.Open(context.Background(), *cfg, transports.Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		panic(err)
	}
	return tr, func() { _ = tr.Close(); cluster.Close() }
}

// Lag shows how far a consumer group is behind: here group "billing" has
// not consumed any of the three messages of the topic's one partition.
func ExampleTransport_Lag() {
	tr, closeAll := exampleTransport()
	defer closeAll()
	ctx := context.Background()
	for _, id := range []string{"1", "2", "3"} {
		if err := tr.Publisher().Publish("orders.events", message.NewMessage(id, nil)); err != nil {
			panic(err)
		}
	}

	lag, err := tr.Lag(ctx, "billing", "orders.events")
	if err != nil {
		panic(err)
	}
	fmt.Println("partition 0 lag:", lag[0])
	// Output: partition 0 lag: 3
}

// Browse reads a topic, a dead-letter topic typically, without consuming it.
func ExampleTransport_Browse() {
	tr, closeAll := exampleTransport()
	defer closeAll()
	ctx := context.Background()
	for _, p := range []string{"first", "second"} {
		if err := tr.Publisher().Publish("poison", message.NewMessage(p, []byte(p))); err != nil {
			panic(err)
		}
	}

	msgs, err := tr.Browse(ctx, "poison")
	if err != nil {
		panic(err)
	}
	for _, m := range msgs {
		fmt.Println(m.UUID, string(m.Payload))
	}
	// Output:
	// first first
	// second second
}
