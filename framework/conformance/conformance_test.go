package conformance_test

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/goleak"

	"github.com/millrace/millrace/framework/conformance"
	"github.com/millrace/millrace/transports"
	"github.com/millrace/millrace/transports/memory"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The suite runs on every transport, unchanged; each Target only says where
// its broker is, as a deployment's environment would.

func TestMemory(t *testing.T) {
	t.Parallel()
	// Services in one process share one in-memory broker, as services share
	// a real one.
	b, err := memory.New(*memory.DefaultConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	reg, err := transports.NewRegistry(memory.KindOn(b))
	if err != nil {
		t.Fatal(err)
	}
	conformance.Run(t, conformance.Target{Kind: "memory", Registry: reg})
}

func TestKafka(t *testing.T) {
	t.Parallel()
	conformance.Run(t, conformance.Target{
		Kind: "kafka",
		Env: func(t *testing.T) []string {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(4))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			return []string{"MILLRACE_TRANSPORT_KAFKA_BROKERS=" + strings.Join(c.ListenAddrs(), ",")}
		},
	})
}

func TestAMQP(t *testing.T) {
	t.Parallel()
	conformance.Run(t, conformance.Target{
		Kind: "amqp",
		Env: func(*testing.T) []string {
			return []string{"MILLRACE_TRANSPORT_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/"}
		},
	})
}
