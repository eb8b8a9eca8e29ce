package sql_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	sqltransport "github.com/millrace/millrace/transports/sql"
	"github.com/millrace/millrace/transports/transporttest"
)

// TestForeignRows_PlainInsertIsConsumed inserts rows as a client other than
// Watermill would, with plain SQL: no uuid, NULL columns, metadata with
// values that are not strings, metadata that is not an object. Every row is
// delivered, in order, with a stable id.
func TestForeignRows_PlainInsertIsConsumed(t *testing.T) {
	type row struct {
		uuid     any // nil: NULL
		payload  any
		metadata any
	}
	rows := []row{
		{nil, []byte("no uuid"), `{"k":"v"}`},
		{nil, nil, nil},
		{"", []byte("empty uuid"), `{"s":"x","n":1,"b":true,"o":{"a":[1]},"z":null}`},
		{nil, []byte("not an object"), `[1,2]`},
		{"given-id", []byte("with uuid"), `{}`},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cfg := testConfig(t, b)
			tr := openTransport(t, b, cfg)
			db := rawDB(t, b, cfg)
			topic := "foreign_" + watermill.NewShortUUID()
			sub, err := tr.Subscriber("g")
			if err != nil {
				t.Fatal(err)
			}
			if err := sub.(message.SubscribeInitializer).SubscribeInitialize(topic); err != nil {
				t.Fatal(err)
			}

			table := b.quote(cfg.TablePrefix + topic)
			insert := "INSERT INTO " + table + " (uuid, payload, metadata) VALUES ($1, $2, $3)"
			if b.name == "mysql" {
				insert = strings.ReplaceAll(strings.ReplaceAll(strings.ReplaceAll(insert, "$1", "?"), "$2", "?"), "$3", "?")
			}
			// The simplest insert: payload only.
			if _, err := db.Exec("INSERT INTO " + table + " (payload) VALUES ('payload only')"); err != nil {
				t.Fatal(err)
			}
			for _, r := range rows {
				if _, err := db.Exec(insert, r.uuid, r.payload, r.metadata); err != nil {
					t.Fatal(err)
				}
			}

			// Subscribe after inserting: on MySQL, a subscription waiting
			// for an ack holds a lock that makes inserts wait.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ch, err := sub.Subscribe(ctx, topic)
			if err != nil {
				t.Fatal(err)
			}
			idPrefix := b.name + ":" + topic + "/"
			first := transporttest.Receive(t, ch, 10*time.Second)
			if string(first.Payload) != "payload only" || !strings.HasPrefix(first.UUID, idPrefix) || len(first.Metadata) != 0 {
				t.Fatalf("first: %s %q %v", first.UUID, first.Payload, first.Metadata)
			}

			// A nacked foreign row comes again with the same id.
			m := <-ch
			id := m.UUID
			m.Nack()
			m = transporttest.Receive(t, ch, 10*time.Second)
			if m.UUID != id || !strings.HasPrefix(id, idPrefix) || string(m.Payload) != "no uuid" || m.Metadata.Get("k") != "v" {
				t.Fatalf("redelivery: %s %q %v, want id %s", m.UUID, m.Payload, m.Metadata, id)
			}

			m = transporttest.Receive(t, ch, 10*time.Second)
			if !strings.HasPrefix(m.UUID, idPrefix) || m.UUID == id || len(m.Payload) != 0 || len(m.Metadata) != 0 {
				t.Fatalf("all NULL: %s %q %v", m.UUID, m.Payload, m.Metadata)
			}

			m = transporttest.Receive(t, ch, 10*time.Second)
			want := map[string]string{"s": "x", "n": "1", "b": "true", "o": `{"a":[1]}`}
			if !strings.HasPrefix(m.UUID, idPrefix) || string(m.Payload) != "empty uuid" || len(m.Metadata) != len(want) {
				t.Fatalf("loose metadata: %s %q %v", m.UUID, m.Payload, m.Metadata)
			}
			for k, v := range want {
				if got := m.Metadata.Get(k); got != v {
					t.Errorf("metadata %s = %q, want %q", k, got, v)
				}
			}

			m = transporttest.Receive(t, ch, 10*time.Second)
			if string(m.Payload) != "not an object" || m.Metadata.Get(sqltransport.MetadataInvalid) == "" || len(m.Metadata) != 1 {
				t.Fatalf("invalid metadata: %s %q %v", m.UUID, m.Payload, m.Metadata)
			}

			m = transporttest.Receive(t, ch, 10*time.Second)
			if m.UUID != "given-id" || string(m.Payload) != "with uuid" {
				t.Fatalf("with uuid: %s %q", m.UUID, m.Payload)
			}

			// Browse gives the same ids.
			msgs, err := tr.Browse(context.Background(), topic)
			if err != nil {
				t.Fatal(err)
			}
			if len(msgs) != 6 || msgs[0].UUID != first.UUID || msgs[1].UUID != id || msgs[5].UUID != "given-id" {
				t.Fatalf("browse: %d messages", len(msgs))
			}
		})
	}
}
