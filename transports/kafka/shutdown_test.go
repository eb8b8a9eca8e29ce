package kafka_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/millrace/millrace/framework"
	"github.com/millrace/millrace/transports/kafka"
)

type job struct {
	N int `json:"n"`
}

// shutdownMessages is how many messages TestApp_StopSettlesEveryAck
// publishes; KAFKA_SHUTDOWN_MESSAGES overrides it.
func shutdownMessages(t *testing.T) int {
	if s := os.Getenv("KAFKA_SHUTDOWN_MESSAGES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	return 10000
}

// shutdownApp is one instance of the service of TestApp_StopSettlesEveryAck,
// built from config as a service builds it.
type shutdownApp struct {
	app     *framework.App
	mu      sync.Mutex
	handled map[string]int // message id: times handled successfully
	enough  chan struct{}  // closed once it handled stopAfter messages
}

func newShutdownApp(t *testing.T, brokers []string, topic string, stopAfter int) *shutdownApp {
	t.Helper()
	reg, err := framework.Transports()
	if err != nil {
		t.Fatal(err)
	}
	env := []string{
		"MILLRACE_SERVICE_NAME=reports",
		"MILLRACE_TRANSPORT_KIND=kafka",
		"MILLRACE_TRANSPORT_KAFKA_BROKERS=" + strings.Join(brokers, ","),
		"MILLRACE_HANDLERS_CONCURRENCY=8",
	}
	cfg, err := framework.Parse(nil, env, reg)
	if err != nil {
		t.Fatal(err)
	}
	kafka.FastGroups(cfg.Transport.Section().(*kafka.Config))
	logger := testLogger()
	tr, closeTransport, err := framework.OpenTransport(context.Background(), cfg, reg, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeTransport)
	app, err := framework.New(cfg, logger, tr)
	if err != nil {
		t.Fatal(err)
	}
	s := &shutdownApp{app: app, handled: map[string]int{}, enough: make(chan struct{})}
	var once sync.Once
	framework.Handle(app, "render", topic, func(ctx context.Context, _ job) error {
		// Some work, so that messages are in flight when Stop begins.
		time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond)
		s.mu.Lock()
		s.handled[framework.Message(ctx).UUID]++
		n := len(s.handled)
		s.mu.Unlock()
		if n >= stopAfter {
			once.Do(func() { close(s.enough) })
		}
		return nil
	})
	return s
}

// TestApp_StopSettlesEveryAck: an App of 8 subscriptions consuming 10,000
// messages of 8 partitions is stopped mid-stream, and the next instance of
// the service takes over, several times in a row: no message that one
// instance handled (and so acked) is handled by a later one. Stop commits
// the offsets of every ack before the consumers leave the group.
func TestApp_StopSettlesEveryAck(t *testing.T) {
	const partitions, rounds = 8, 4
	total := shutdownMessages(t)
	brokers := newCluster(t, partitions)
	const topic = "reports"

	ctx := context.Background()
	var apps []*shutdownApp
	handledBy := map[string]int{} // id: the round that handled it first
	for round := 0; len(handledBy) < total; round++ {
		if round > 2*rounds {
			t.Fatalf("%d of %d messages handled after %d rounds", len(handledBy), total, round)
		}
		// Each instance stops after about a quarter; the last handles
		// the rest.
		stopAfter := min(total/rounds, total-len(handledBy))
		a := newShutdownApp(t, brokers, topic, stopAfter)
		apps = append(apps, a)
		if round == 0 {
			start := time.Now()
			for i := range total {
				if err := a.app.Publish(ctx, topic, job{N: i}, framework.WithKey(fmt.Sprint(i))); err != nil {
					t.Fatal(err)
				}
			}
			t.Logf("published %d messages in %v", total, time.Since(start).Round(time.Millisecond))
		}
		start := time.Now()
		if err := a.app.Start(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case <-a.enough:
		case <-time.After(60 * time.Second):
			a.mu.Lock()
			n := len(a.handled)
			a.mu.Unlock()
			t.Fatalf("round %d: handled %d of %d messages", round, n, stopAfter)
		}
		if err := a.app.Stop(ctx); err != nil {
			t.Fatal(err)
		}

		a.mu.Lock()
		again, twice := 0, 0
		for id, n := range a.handled {
			if n > 1 {
				twice++
			}
			if first, ok := handledBy[id]; ok {
				again++
				if again <= 5 {
					t.Errorf("round %d handled %s again, which round %d handled and acked", round, id, first)
				}
				continue
			}
			handledBy[id] = round
		}
		t.Logf("round %d: handled %d messages in %v (start to stopped), %d of them handled by an earlier instance, %d more than once in this one",
			round, len(a.handled), time.Since(start).Round(time.Millisecond), again, twice)
		a.mu.Unlock()
		if again > 0 {
			t.Fatalf("round %d handled %d messages that earlier instances had acked", round, again)
		}
	}
}
