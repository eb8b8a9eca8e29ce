package sql_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Many goroutines publishing at once (merged into shared INSERTs under
// load) lose nothing, and each call's messages are stored one after the
// other, in the order given.
func TestPublish_ConcurrentCallsKeepEachCallTogether(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			c := testConfig(t, b)
			tr := openTransport(t, b, c)
			const goroutines, calls, perCall = 32, 10, 3
			topic := "orders"
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Go(func() {
					for k := range calls {
						msgs := make([]*message.Message, perCall)
						for i := range msgs {
							id := fmt.Sprintf("g%d-c%d-m%d", g, k, i)
							msgs[i] = message.NewMessage(id, []byte(id))
						}
						if err := tr.Publisher().Publish(topic, msgs...); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()

			rows, err := rawDB(t, b, c).QueryContext(context.Background(),
				"SELECT payload FROM "+b.quote(c.TablePrefix+topic)+" ORDER BY "+b.quote("offset"))
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var stored []string
			for rows.Next() {
				var p []byte
				if err := rows.Scan(&p); err != nil {
					t.Fatal(err)
				}
				stored = append(stored, string(p))
			}
			if len(stored) != goroutines*calls*perCall {
				t.Fatalf("%d rows stored, want %d", len(stored), goroutines*calls*perCall)
			}
			seen := map[string]bool{}
			for i := 0; i < len(stored); i += perCall {
				var g, k int
				if _, err := fmt.Sscanf(stored[i], "g%d-c%d-m0", &g, &k); err != nil {
					t.Fatalf("row %d is %q, want the first message of a call", i, stored[i])
				}
				for j := range perCall {
					if want := fmt.Sprintf("g%d-c%d-m%d", g, k, j); stored[i+j] != want {
						t.Fatalf("row %d is %q, want %q: a call's messages were split or reordered", i+j, stored[i+j], want)
					}
				}
				call := fmt.Sprintf("g%d-c%d", g, k)
				if seen[call] {
					t.Fatalf("call %s stored twice", call)
				}
				seen[call] = true
			}
		})
	}
}
