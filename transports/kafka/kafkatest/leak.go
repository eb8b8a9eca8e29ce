package kafkatest

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// VerifyTestMain runs the tests and, when they passed, fails the binary if
// goroutines are left. It is goleak.VerifyTestMain with two allowances for
// packages that use Kafka through Sarama:
//
//   - Sarama records metrics with rcrowley/go-metrics, whose first meter
//     starts a process-wide ticker goroutine (meterArbiter.tick) that never
//     ends; it is ignored.
//   - watermill-kafka closes a subscription's Sarama client in a goroutine
//     that Subscriber.Close does not wait for, and that close waits for the
//     client's metadata refresher, which may be retrying a broker a test has
//     just stopped. The check waits up to 10s for such goroutines to end;
//     what is still there then is a leak.
func VerifyTestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		opt := goleak.IgnoreTopFunction("github.com/rcrowley/go-metrics.(*meterArbiter).tick")
		err := goleak.Find(opt)
		for deadline := time.Now().Add(10 * time.Second); err != nil && time.Now().Before(deadline); {
			time.Sleep(200 * time.Millisecond)
			err = goleak.Find(opt)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}
