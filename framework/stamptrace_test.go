package framework_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/millrace/millrace/framework"
	"github.com/millrace/millrace/framework/frameworktest"
)

// A message stamped in a traced context (as the outbox stamps it in the
// user's transaction) carries that trace, and its consumer continues it
// when the message is published later on a context with no trace at all.
func TestStamp_CarriesTheTraceOfItsContext(t *testing.T) {
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	h := frameworktest.New(t, frameworktest.WithConfig(noStack))
	h.App.SetTracerProvider(tp)
	done := make(chan struct{})
	framework.HandleRaw(h.App, "relayed", "orders.relayed", func(*message.Message) ([]*message.Message, error) {
		close(done)
		return nil, nil
	})
	h.Start()

	ctx, span := tp.Tracer("test").Start(context.Background(), "place order")
	msg := message.NewMessage("relayed-1", []byte(`{}`))
	h.App.Stamp(ctx, msg)
	span.End()
	want := span.SpanContext()
	if tp := msg.Metadata.Get("traceparent"); !strings.Contains(tp, want.TraceID().String()) || !strings.Contains(tp, want.SpanID().String()) {
		t.Fatalf("traceparent after Stamp = %q, want trace %s span %s", tp, want.TraceID(), want.SpanID())
	}
	if err := h.App.PublishMessage(context.Background(), "orders.relayed", msg); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the relayed message was not handled")
	}
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		for _, s := range spans.GetSpans() {
			if s.Name == "orders.relayed process" {
				if s.SpanContext.TraceID() != want.TraceID() || s.Parent.SpanID() != want.SpanID() {
					t.Errorf("consumer span in trace %s (parent %s), want trace %s parent %s",
						s.SpanContext.TraceID(), s.Parent.SpanID(), want.TraceID(), want.SpanID())
				}
				return
			}
		}
	}
	t.Fatalf("no consumer span; spans: %v", names(spans.GetSpans()))
}
