package kafka_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
)

// kcatPath returns the path of kcat. Without kcat on PATH the test is
// skipped, except under CI=true, where CI installs it and its absence is a
// failure.
func kcatPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("kcat")
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("kcat not found on PATH (CI=true requires it): %v", err)
	}
	t.Skip("kcat not found on PATH: install it (Debian: apt-get install kcat) to run the interoperability tests")
	return ""
}

// runKcat runs kcat with args and stdin and returns its stdout.
func runKcat(t *testing.T, kcat, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat %s: %v\nstderr: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// TestKcat_ProducesForSubscriber: a record kcat produces (a key, headers, one
// of them not UTF-8, no Watermill id) reaches a millrace subscriber with its
// payload, the headers as metadata byte for byte, the key as partition key,
// its timestamp as published_at and an id made from its place in the log.
func TestKcat_ProducesForSubscriber(t *testing.T) {
	kcat := kcatPath(t)
	brokers := newCluster(t, 1)
	const topic = "from-kcat"
	runKcat(t, kcat, "hello from kcat\n", "-P", "-b", brokers[0], "-t", topic, "-H", "k=v", "-H", "trace=abc-1", "-H", "bin=\xff\xc3\x28", "-k", "key-1")

	tr := openTransport(t, testConfig(brokers))
	sub, err := tr.Subscriber("g")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ch, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-ch:
		if m.UUID != "kafka:from-kcat/0/0" || string(m.Payload) != "hello from kcat" ||
			m.Metadata.Get("k") != "v" || m.Metadata.Get("trace") != "abc-1" || m.Metadata.Get("bin") != "\xff\xc3\x28" ||
			m.Metadata.Get(millrace.MetadataPartitionKey) != "key-1" {
			t.Errorf("got %s %q %v", m.UUID, m.Payload, m.Metadata)
		}
		// kcat stamps the record with the time it produced it.
		at, err := time.Parse(time.RFC3339Nano, m.Metadata.Get(millrace.MetadataPublishedAt))
		if err != nil || at.Location() != time.UTC || time.Since(at) > time.Minute || time.Until(at) > time.Minute {
			t.Errorf("published_at %q (%v), want the record's timestamp, about now, in UTC", m.Metadata.Get(millrace.MetadataPublishedAt), err)
		}
		m.Ack()
	case <-ctx.Done():
		t.Fatal("message not received")
	}
}

// TestKcat_ConsumesPublished: kcat reads what millrace published: payload,
// the _watermill_message_uuid header and every metadata key as headers, and
// the partition key as record key.
func TestKcat_ConsumesPublished(t *testing.T) {
	kcat := kcatPath(t)
	brokers := newCluster(t, 1)
	const topic = "to-kcat"
	tr := openTransport(t, testConfig(brokers))
	msg := message.NewMessage("id-42", []byte("hello kcat"))
	msg.Metadata.Set("type", "OrderPlaced")
	msg.Metadata.Set(millrace.MetadataPartitionKey, "order-7")
	if err := tr.Publisher().Publish(topic, msg); err != nil {
		t.Fatal(err)
	}

	out := runKcat(t, kcat, "", "-C", "-b", brokers[0], "-t", topic, "-o", "beginning", "-e", "-q",
		"-f", "key=%k|headers=%h|payload=%s\n")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1 {
		t.Fatalf("kcat read %d records, want 1:\n%s", len(lines), out)
	}
	fields := strings.Split(lines[0], "|")
	if len(fields) != 3 || fields[0] != "key=order-7" || fields[2] != "payload=hello kcat" {
		t.Fatalf("kcat read %q", lines[0])
	}
	headers := map[string]string{}
	for h := range strings.SplitSeq(strings.TrimPrefix(fields[1], "headers="), ",") {
		k, v, _ := strings.Cut(h, "=")
		headers[k] = v
	}
	want := map[string]string{"_watermill_message_uuid": "id-42", "type": "OrderPlaced", millrace.MetadataPartitionKey: "order-7"}
	if len(headers) != len(want) {
		t.Errorf("headers %v, want %v", headers, want)
	}
	for k, v := range want {
		if headers[k] != v {
			t.Errorf("header %s = %q, want %q (all: %v)", k, headers[k], v, headers)
		}
	}
}
