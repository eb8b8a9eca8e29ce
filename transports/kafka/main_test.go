package kafka_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves goroutines behind. One is ignored:
// Sarama records metrics with rcrowley/go-metrics, whose first meter starts a
// process-wide ticker goroutine (meterArbiter.tick) that never ends.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/rcrowley/go-metrics.(*meterArbiter).tick"),
	)
}
