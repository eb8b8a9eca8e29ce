package kafka_test

import (
	"testing"

	"github.com/millrace/millrace/transports/kafka/kafkatest"
)

// TestMain checks that no test leaves goroutines behind (see
// kafkatest.VerifyTestMain for what it allows for).
func TestMain(m *testing.M) { kafkatest.VerifyTestMain(m) }
