package sql_test

import (
	"os"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
)

// TestUniversal runs Watermill's universal Pub/Sub tests on both databases.
// Every constructor call opens its own transport (as separate services
// would), all sharing one table prefix; subscribers of the plain
// constructor share group "", so they compete like instances of one
// service.
//
// Features: consumer groups, persistence and order are what watermill-sql
// gives. ExactlyOnceDelivery is false: millrace promises at least once (a
// failed offset commit after an ack redelivers).
//
// The suite runs in short mode (ForceShort: fewer messages and
// subscribers, the slow many-message variants skipped) so that the package
// tests stay well under two minutes with -race. Set
// MILLRACE_SQL_FULL_UNIVERSAL=1 to run all of it.
func TestUniversal(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cfg := testConfig(t, b)
			if b.name == "mysql" {
				// A MySQL subscription that has caught up holds a lock
				// that makes inserts into its topic wait until its
				// message is settled (see the package documentation);
				// TestMessageCtx publishes twice before it reads, so
				// the second publish waits for the ack deadline.
				cfg.AckDeadline = 2 * time.Second
			}
			constructor := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
				tr := openTransport(t, b, cfg)
				sub, err := tr.Subscriber(group)
				if err != nil {
					t.Fatal(err)
				}
				return tr.Publisher(), sub
			}
			tests.TestPubSub(t,
				tests.Features{
					ConsumerGroups:                      true,
					ExactlyOnceDelivery:                 false,
					GuaranteedOrder:                     true,
					GuaranteedOrderWithSingleSubscriber: true,
					Persistent:                          true,
					NewSubscriberReceivesOldMessages:    false,
					ForceShort:                          os.Getenv("MILLRACE_SQL_FULL_UNIVERSAL") == "",
				},
				func(t *testing.T) (message.Publisher, message.Subscriber) { return constructor(t, "") },
				constructor,
			)
		})
	}
}
