package cqrs_test

import (
	"context"
	"testing"
	"testing/synctest"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/cqrs"
)

func TestProtobuf_MessagesCarryTheirContentTypeAndDecodeEitherWay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := broker(t)
		// A service that sends Protocol Buffers, and one that sends JSON:
		// the handler decodes each by its content_type.
		app, bus := service(t, b, "pb", noStack, cqrs.WithCodec(cqrs.Protobuf{}))
		var got []string
		cqrs.HandleCommand(bus, func(_ context.Context, c *wrapperspb.StringValue) error {
			got = append(got, c.GetValue())
			return nil
		})
		var fields []string
		cqrs.HandleEvent(bus, "audit", func(_ context.Context, e *structpb.Struct) error {
			fields = append(fields, e.GetFields()["order"].GetStringValue())
			return nil
		})
		start(t, app)
		_, jsonBus := service(t, b, "json", noStack)
		ctx := context.Background()
		if err := cqrs.Send(ctx, bus, wrapperspb.String("by protobuf")); err != nil {
			t.Fatal(err)
		}
		if err := cqrs.Send(ctx, jsonBus, wrapperspb.String("by json")); err != nil {
			t.Fatal(err)
		}
		event, _ := structpb.NewStruct(map[string]any{"order": "o-1"})
		if err := cqrs.Publish(ctx, bus, event); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if len(got) != 2 || got[0] != "by protobuf" || got[1] != "by json" {
			t.Errorf("handled %q, want both, in order", got)
		}
		if len(fields) != 1 || fields[0] != "o-1" {
			t.Errorf("event fields %q", fields)
		}
		msgs := browse(t, b, "StringValue")
		if ct := msgs[0].Metadata.Get(millrace.MetadataContentType); ct != cqrs.ProtobufContentType {
			t.Errorf("content type %q, want %q", ct, cqrs.ProtobufContentType)
		}
		if ct := msgs[1].Metadata.Get(millrace.MetadataContentType); ct != "application/json" {
			t.Errorf("content type %q, want application/json", ct)
		}
	})
}

func TestProtobuf_NotAProtoMessageIsAnError(t *testing.T) {
	if _, err := (cqrs.Protobuf{}).Marshal(PlaceOrder{}); err == nil {
		t.Error("Marshal of a plain struct succeeded")
	}
	var v PlaceOrder
	if err := (cqrs.Protobuf{}).Unmarshal(nil, &v); err == nil {
		t.Error("Unmarshal into a plain struct succeeded")
	}
}
