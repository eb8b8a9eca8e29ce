// Package kafkatest helps test services on the Kafka transport without a
// Kafka server: NewCluster starts an in-process Kafka-protocol broker
// (franz-go's kfake) for one test, and VerifyTestMain is a goroutine leak
// check that knows the Kafka client's slow teardown.
//
//	func TestMain(m *testing.M) { kafkatest.VerifyTestMain(m) }
//
//	func TestOrders(t *testing.T) {
//		brokers := kafkatest.NewCluster(t, 4)
//		t.Setenv("MILLRACE_TRANSPORT_KIND", "kafka")
//		t.Setenv("MILLRACE_TRANSPORT_KAFKA_BROKERS", strings.Join(brokers, ","))
//		...
//	}
package kafkatest
