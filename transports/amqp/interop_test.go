package amqp_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/transports/amqp"
	"github.com/millrace/millrace/transports/transporttest"
)

// amqpTool returns the path of one of the amqp-tools binaries (Debian
// package amqp-tools). When it is missing the test is skipped, except in CI
// (env CI=true), whose script installs the package: there it fails.
func amqpTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not on PATH: CI must install the amqp-tools package", name)
		}
		t.Skipf("%s not on PATH: install the Debian package amqp-tools to run this test", name)
	}
	return path
}

// toolURL is brokerURL for rabbitmq-c: it reads the trailing "/" of
// amqp://host:5672/ as the empty vhost, not the default vhost "/", and
// fails with NOT_ALLOWED - vhost not found.
var toolURL = strings.TrimSuffix(brokerURL, "/")

// runTool runs an amqp-tools command and returns its standard output.
func runTool(t *testing.T, path string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, args...).Output()
	if err != nil {
		msg := err.Error()
		if ee, ok := err.(*exec.ExitError); ok {
			msg += ": " + string(ee.Stderr)
		}
		t.Fatalf("%s %s: %s", path, strings.Join(args, " "), msg)
	}
	return string(out)
}

// A message that amqp-publish (rabbitmq-c) sends arrives with its payload,
// its header as metadata, its content-type and reply-to properties as
// metadata content_type and reply_to, and an id.
func TestInterop_AmqpPublishToSubscriber(t *testing.T) {
	publish := amqpTool(t, "amqp-publish")
	tr := openTransport(t, nil)
	topic := uniqueTopic("interop-in")
	subs := subscribeGroups(t, tr, topic, nil, "g")

	runTool(t, publish, "-u", toolURL, "-e", topic, "-r", "", "-p",
		"-H", "origin: amqp-tools", "-C", "text/plain", "-t", "tools.replies", "-b", "hello from C")

	got := transporttest.Receive(t, subs["g"], 10*time.Second)
	if string(got.Payload) != "hello from C" {
		t.Errorf("payload %q, want %q", got.Payload, "hello from C")
	}
	for k, want := range map[string]string{"origin": "amqp-tools", millrace.MetadataContentType: "text/plain", millrace.MetadataReplyTo: "tools.replies"} {
		if v := got.Metadata.Get(k); v != want {
			t.Errorf("metadata %s = %q, want %q (metadata %v)", k, v, want, got.Metadata)
		}
	}
	if got.UUID == "" {
		t.Error("message has no id")
	}
}

// A message millrace publishes is read intact by amqp-consume. amqp-consume
// (like every amqp-tools binary) prints only bodies, so a plain amqp091
// consumer, standing for any other client, checks that metadata arrives as
// string headers and the id as message-id.
func TestInterop_PublisherToForeignConsumers(t *testing.T) {
	consume := amqpTool(t, "amqp-consume")
	tr := openTransport(t, nil)
	topic := uniqueTopic("interop-out")
	toolQueue, rawQueue := topic+".amqp-consume", topic+".raw"
	deleteLater(t, func() []string { return []string{toolQueue, rawQueue} }, func() []string { return []string{topic} })
	if err := tr.Retain(context.Background(), topic); err != nil { // declares the exchange
		t.Fatal(err)
	}
	deleteLater(t, func() []string { return []string{amqp.RetainedQueue(topic)} }, func() []string { return nil })

	conn, err := amqp091.Dial(brokerURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{toolQueue, rawQueue} {
		if _, err := ch.QueueDeclare(q, false, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		if err := ch.QueueBind(q, "", topic, false, nil); err != nil {
			t.Fatal(err)
		}
	}

	payload := "{\"order\":42,\"note\":\"line one\\nline two\"}"
	msg := newMessage(payload)
	msg.Metadata.Set("origin", "millrace")
	msg.Metadata.Set(millrace.MetadataContentType, "application/json")
	if err := tr.Publisher().Publish(topic, msg); err != nil {
		t.Fatal(err)
	}

	if out := runTool(t, consume, "-u", toolURL, "-q", toolQueue, "-c", "1", "cat"); out != payload {
		t.Errorf("amqp-consume printed %q, want %q", out, payload)
	}

	d, ok, err := ch.Get(rawQueue, true)
	if err != nil || !ok {
		t.Fatalf("get from %s: ok=%v err=%v", rawQueue, ok, err)
	}
	if string(d.Body) != payload || d.MessageId != msg.UUID || d.DeliveryMode != amqp091.Persistent || d.ContentType != "application/json" {
		t.Errorf("got body %q message-id %q delivery mode %d content-type %q, want %q, %q, persistent, application/json",
			d.Body, d.MessageId, d.DeliveryMode, d.ContentType, payload, msg.UUID)
	}
	if v, _ := d.Headers["origin"].(string); v != "millrace" {
		t.Errorf("header origin = %#v, want string millrace (headers %v)", d.Headers["origin"], d.Headers)
	}
	if v, _ := d.Headers["_watermill_message_uuid"].(string); v != msg.UUID {
		t.Errorf("header _watermill_message_uuid = %#v, want %s", d.Headers["_watermill_message_uuid"], msg.UUID)
	}
}

// Services on plain watermill-amqp (NewDurablePubSubConfig, queue
// "<topic>_<group>") and millrace read each other's messages: id, payload
// and metadata.
func TestInterop_PlainWatermillAMQP(t *testing.T) {
	tr := openTransport(t, nil)
	topic := uniqueTopic("wamqp")
	subs := subscribeGroups(t, tr, topic, nil, "millrace")
	deleteLater(t, func() []string { return []string{topic + "_plain"} }, func() []string { return nil })

	c := wamqp.NewDurablePubSubConfig(brokerURL, wamqp.GenerateQueueNameTopicNameWithSuffix("plain"))
	pub, err := wamqp.NewPublisher(c, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	sub, err := wamqp.NewSubscriber(c, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	plain, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}

	fromPlain := newMessage("from plain")
	fromPlain.Metadata.Set("origin", "plain")
	if err := pub.Publish(topic, fromPlain); err != nil {
		t.Fatal(err)
	}
	fromMillrace := newMessage("from millrace")
	fromMillrace.Metadata.Set("origin", "millrace")
	if err := tr.Publisher().Publish(topic, fromMillrace); err != nil {
		t.Fatal(err)
	}

	for _, want := range []*message.Message{fromPlain, fromMillrace} {
		for name, ch := range map[string]<-chan *message.Message{"millrace": subs["millrace"], "plain": plain} {
			got := transporttest.Receive(t, ch, 10*time.Second)
			if got.UUID != want.UUID || string(got.Payload) != string(want.Payload) ||
				got.Metadata.Get("origin") != want.Metadata.Get("origin") {
				t.Errorf("%s subscriber got %s %q %v, want %s %q %v", name,
					got.UUID, got.Payload, got.Metadata, want.UUID, want.Payload, want.Metadata)
			}
		}
	}
}
