package sql_test

import (
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
)

// BenchmarkPublish compares publish throughput (msgs/s):
//
//   - watermill-default: watermill-sql's own publisher with its default
//     schema and config, one message per Publish;
//   - millrace-1: this transport, one message per Publish;
//   - millrace-100: this transport, 100 messages per Publish (one INSERT).
//
// Every Publish is a committed statement, so the figures depend mostly on
// the database's commit latency.
func BenchmarkPublish(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			b.Run("watermill-default-1", func(b *testing.B) {
				cfg := testConfig(b, be)
				db := rawDB(b, be, cfg)
				var schema wsql.SchemaAdapter = wsql.DefaultPostgreSQLSchema{}
				if be.name == "mysql" {
					schema = wsql.DefaultMySQLSchema{}
				}
				pub, err := wsql.NewPublisher(wsql.BeginnerFromStdSQL(db), wsql.PublisherConfig{SchemaAdapter: schema, AutoInitializeSchema: true}, nil)
				if err != nil {
					b.Fatal(err)
				}
				topic := cfg.TablePrefix + "raw"
				// Its table is watermill_<topic>: drop it too.
				b.Cleanup(func() { dropTables(b, be, cfg.DSN, "watermill_"+cfg.TablePrefix) })
				benchPublish(b, pub, topic, 1)
			})
			for _, batch := range []int{1, 100} {
				name := "millrace-1"
				if batch > 1 {
					name = "millrace-100"
				}
				b.Run(name, func(b *testing.B) {
					tr := openTransport(b, be, testConfig(b, be))
					benchPublish(b, tr.Publisher(), "bench", batch)
				})
			}
		})
	}
}

// benchPublish publishes b.N messages, batch per Publish call, and reports
// msgs/s. The topic's table is created before the timer starts.
func benchPublish(b *testing.B, pub message.Publisher, topic string, batch int) {
	payload := []byte(`{"order_id":42,"amount":"19.99"}`)
	newBatch := func(n int) []*message.Message {
		msgs := make([]*message.Message, n)
		for i := range msgs {
			msgs[i] = message.NewMessage(watermill.NewUUID(), payload)
		}
		return msgs
	}
	if err := pub.Publish(topic, newBatch(1)...); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for sent := 0; sent < b.N; sent += batch {
		if err := pub.Publish(topic, newBatch(min(batch, b.N-sent))...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
