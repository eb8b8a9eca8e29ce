package conformance_test

import (
	"os"
	"strings"
	"testing"

	"github.com/millrace/millrace/framework/conformance"
	"github.com/millrace/millrace/transports"
	"github.com/millrace/millrace/transports/kafka/kafkatest"
	"github.com/millrace/millrace/transports/memory"
)

func TestMain(m *testing.M) {
	if os.Getenv(envKillChild) == "1" {
		os.Exit(runKillChild()) // this binary is TestSIGKILL's consumer process
	}
	kafkatest.VerifyTestMain(m)
}

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
			brokers := kafkatest.NewCluster(t, 4)
			return []string{"MILLRACE_TRANSPORT_KAFKA_BROKERS=" + strings.Join(brokers, ",")}
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

// The SQL targets give each run its own table prefix, as two deployments
// sharing a database would.

func TestPostgres(t *testing.T) {
	t.Parallel()
	conformance.Run(t, conformance.Target{
		Kind: "postgres",
		Env: func(*testing.T) []string {
			return []string{
				"MILLRACE_TRANSPORT_POSTGRES_DSN=postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
				"MILLRACE_TRANSPORT_POSTGRES_TABLE_PREFIX=" + tablePrefix(),
			}
		},
	})
}

func TestMySQL(t *testing.T) {
	t.Parallel()
	conformance.Run(t, conformance.Target{
		Kind: "mysql",
		Env: func(*testing.T) []string {
			return []string{
				"MILLRACE_TRANSPORT_MYSQL_DSN=root@tcp(127.0.0.1:3306)/test?parseTime=true",
				"MILLRACE_TRANSPORT_MYSQL_TABLE_PREFIX=" + tablePrefix(),
			}
		},
	})
}

func tablePrefix() string { return "conf_" + randomHex() + "_" }
