package sql_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/transports/transporttest"
)

// TestFault_PostgresRestartLosesNothing restarts the PostgreSQL server
// while 10,000 messages flow from a publisher to an acking subscriber: the
// subscription recovers by itself, the publisher retries the batches that
// failed, and every message is received at least once.
//
// It restarts the shared server, so it runs only with MILLRACE_FAULTS=1
// (CI runs it in a separate, serial step).
func TestFault_PostgresRestartLosesNothing(t *testing.T) {
	if os.Getenv("MILLRACE_FAULTS") != "1" {
		t.Skip("restarts PostgreSQL: set MILLRACE_FAULTS=1 to run")
	}
	const (
		total = 10000
		batch = 10
	)
	b := backends[0]
	cfg := testConfig(t, b)
	cfg.AckDeadline = 5 * time.Second
	tr := openTransport(t, b, cfg)
	topic := "fault_" + watermill.NewShortUUID()
	ch := transporttest.SubscribeGroup(t, tr, "g", topic)

	var (
		mu       sync.Mutex
		received = make(map[string]int, total)
		allIn    = make(chan struct{})
	)
	go func() {
		for m := range ch {
			m.Ack()
			mu.Lock()
			received[m.UUID]++
			if len(received) == total {
				close(allIn)
			}
			mu.Unlock()
		}
	}()

	ids := make([]string, total)
	for i := range ids {
		ids[i] = watermill.NewUUID()
	}
	deadline := time.Now().Add(90 * time.Second)
	restarted := make(chan error, 1)
	var publishErrors int
	for start := 0; start < total; start += batch {
		if start == total/3/batch*batch {
			go func() {
				// No pipes: the restarted server would inherit them and
				// keep them open.
				log := filepath.Join(t.TempDir(), "restart.log")
				err := exec.Command("sh", "-c",
					"pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main restart >"+log+" 2>&1").Run()
				if err != nil {
					out, _ := os.ReadFile(log)
					err = fmt.Errorf("%w: %s", err, out)
				}
				restarted <- err
			}()
		}
		for {
			msgs := make([]*message.Message, batch)
			for i := range msgs {
				msgs[i] = message.NewMessage(ids[start+i], []byte("x"))
			}
			err := tr.Publisher().Publish(topic, msgs...)
			if err == nil {
				break
			}
			publishErrors++
			if time.Now().After(deadline) {
				t.Fatalf("publish still failing: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(3 * time.Millisecond) // spread the flow over the restart
	}
	if err := <-restarted; err != nil {
		t.Fatalf("restart PostgreSQL: %v", err)
	}
	t.Logf("published %d messages; %d publish calls failed and were retried", total, publishErrors)

	select {
	case <-allIn:
	case <-time.After(time.Until(deadline) + 30*time.Second):
	}
	mu.Lock()
	defer mu.Unlock()
	var missing, dup int
	for _, id := range ids {
		switch n := received[id]; {
		case n == 0:
			missing++
		case n > 1:
			dup++
		}
	}
	t.Logf("received %d distinct messages, %d more than once", len(received), dup)
	if missing > 0 {
		t.Fatalf("%d of %d messages never received", missing, total)
	}
}
