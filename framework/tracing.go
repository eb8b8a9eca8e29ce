package framework

import (
	"context"
	"fmt"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/millrace/millrace"
)

// tracerName names the App's spans' instrumentation scope.
const tracerName = "github.com/millrace/millrace/framework"

// propagator carries the W3C trace context (traceparent, tracestate) in
// message metadata.
var propagator = propagation.TraceContext{}

// metadataCarrier adapts message metadata to propagation.TextMapCarrier.
type metadataCarrier message.Metadata

func (c metadataCarrier) Get(key string) string { return c[key] }
func (c metadataCarrier) Set(key, value string) { c[key] = value }
func (c metadataCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// tracing is the App's tracer and whether it records spans; a tracer that
// does not record still carries a trace that messages bring along.
type tracing struct {
	tracer    trace.Tracer
	recording bool
	system    string // messaging.system: the transport kind
	shutdown  func(context.Context) error
}

// newTracing builds the tracer that cfg asks for: OTLP export when an
// endpoint is set, otherwise a tracer that records nothing but carries
// trace context along.
func newTracing(ctx context.Context, cfg *Config) (*tracing, error) {
	t := &tracing{tracer: noop.NewTracerProvider().Tracer(tracerName), system: cfg.Transport.Kind}
	tc := cfg.Observability.Tracing
	if tc.Endpoint == "" {
		return t, nil
	}
	var exp *otlptrace.Exporter
	var err error
	url := strings.Contains(tc.Endpoint, "://")
	switch tc.Protocol {
	case "grpc":
		opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(tc.Endpoint), otlptracegrpc.WithInsecure()}
		if url {
			opts = []otlptracegrpc.Option{otlptracegrpc.WithEndpointURL(tc.Endpoint)}
		}
		exp, err = otlptracegrpc.New(ctx, opts...)
	default:
		opts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(tc.Endpoint), otlptracehttp.WithInsecure()}
		if url {
			opts = []otlptracehttp.Option{otlptracehttp.WithEndpointURL(tc.Endpoint)}
		}
		exp, err = otlptracehttp.New(ctx, opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("config key observability.tracing.endpoint: %w", err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", cfg.Service.Name))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(tc.SampleRatio))),
	)
	t.use(tp)
	t.shutdown = tp.Shutdown
	return t, nil
}

// use makes tp the tracer's provider.
func (t *tracing) use(tp trace.TracerProvider) {
	t.tracer = tp.Tracer(tracerName)
	_, isNoop := tp.(noop.TracerProvider)
	t.recording = !isNoop
}

// SetTracerProvider makes the App record its spans with tp instead of the
// one config builds (observability.tracing): for tests with an in-memory
// exporter, or a service that sets up OpenTelemetry itself. Call it before
// Start.
func (a *App) SetTracerProvider(tp trace.TracerProvider) { a.tracing.use(tp) }

// startConsume starts the span of one delivery of msg to h, a child of the
// trace the message carries. It returns ctx unchanged and a nil span when
// there is nothing to record or carry along.
func (t *tracing) startConsume(ctx context.Context, h *handler, msg *message.Message) (context.Context, trace.Span) {
	parent := propagator.Extract(ctx, metadataCarrier(msg.Metadata))
	if !t.recording && !trace.SpanContextFromContext(parent).IsValid() {
		return ctx, nil
	}
	return t.tracer.Start(parent, h.topic+" process",
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.system", t.system),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", h.topic),
			attribute.String("messaging.consumer.group.name", h.group),
			attribute.String("messaging.message.id", msg.UUID),
			attribute.String("messaging.message.conversation_id", msg.Metadata.Get(millrace.MetadataCorrelationID)),
			attribute.String("millrace.handler", h.name),
			attribute.String("millrace.message_type", msg.Metadata.Get(millrace.MetadataType)),
		))
}

// endConsume ends a delivery's span with its outcome.
func endConsume(span trace.Span, o Outcome) {
	if span == nil {
		return
	}
	span.SetAttributes(attribute.String("millrace.outcome", o.Result()))
	if o.Err != nil {
		span.RecordError(o.Err)
		if !o.HeldBack {
			span.SetStatus(codes.Error, o.Err.Error())
		}
	}
	span.End()
}

// startPublish starts the span of publishing msgs to topic (one call), and
// puts its trace context on every message that carries none yet. It
// returns a nil span when there is nothing to record or carry along.
func (t *tracing) startPublish(ctx context.Context, topic string, msgs []*message.Message) trace.Span {
	if !t.recording && !trace.SpanContextFromContext(ctx).IsValid() {
		return nil
	}
	ctx, span := t.tracer.Start(ctx, topic+" publish",
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("messaging.system", t.system),
			attribute.String("messaging.operation.type", "send"),
			attribute.String("messaging.destination.name", topic),
			attribute.Int("messaging.batch.message_count", len(msgs)),
		))
	for _, m := range msgs {
		if m.Metadata.Get("traceparent") == "" {
			propagator.Inject(ctx, metadataCarrier(m.Metadata))
		}
	}
	return span
}

// endPublish ends a publish span.
func endPublish(span trace.Span, err error) {
	if span == nil {
		return
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
