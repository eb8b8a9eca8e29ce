package middleware_test

import (
	"context"
	"maps"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/middleware"
)

// withMetadata returns a message with id uuid and the metadata kv (key,
// value, ...).
func withMetadata(uuid string, kv ...string) *message.Message {
	msg := message.NewMessage(uuid, nil)
	for i := 0; i+1 < len(kv); i += 2 {
		msg.Metadata.Set(kv[i], kv[i+1])
	}
	return msg
}

func TestCorrelate(t *testing.T) {
	const corr, cause = millrace.MetadataCorrelationID, millrace.MetadataCausationID
	for _, tc := range []struct {
		name          string
		handled, out  *message.Message
		wantCorr      string
		wantCausation string
	}{
		{"no handled message: out starts a flow", nil, withMetadata("out-1"), "out-1", ""},
		{"no handled message, out in a flow already", nil, withMetadata("out-1", corr, "flow-9"), "flow-9", ""},
		{"no handled message, out with a cause already", nil, withMetadata("out-1", cause, "earlier"), "out-1", "earlier"},
		{"handled without correlation: it started the flow", withMetadata("in-1", "k", "v"), withMetadata("out-1"), "in-1", "in-1"},
		{"handled with correlation: out inherits it", withMetadata("in-1", corr, "flow-1"), withMetadata("out-1"), "flow-1", "in-1"},
		{"out with both ids keeps them", withMetadata("in-1", corr, "flow-1"), withMetadata("out-1", corr, "other", cause, "earlier"), "other", "earlier"},
		{"out with a correlation id only", withMetadata("in-1", corr, "flow-1"), withMetadata("out-1", corr, "other"), "other", "in-1"},
		{"out with a causation id only", withMetadata("in-1", corr, "flow-1"), withMetadata("out-1", cause, "earlier"), "flow-1", "earlier"},
		{"out with nil metadata", withMetadata("in-1", corr, "flow-1"), &message.Message{UUID: "out-1"}, "flow-1", "in-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before message.Metadata
			if tc.handled != nil {
				before = maps.Clone(tc.handled.Metadata)
			}
			middleware.Correlate(tc.handled, tc.out)
			if got := tc.out.Metadata.Get(corr); got != tc.wantCorr {
				t.Errorf("correlation id %q, want %q", got, tc.wantCorr)
			}
			if got := tc.out.Metadata.Get(cause); got != tc.wantCausation {
				t.Errorf("causation id %q, want %q", got, tc.wantCausation)
			}
			if _, set := tc.out.Metadata[cause]; set != (tc.wantCausation != "") {
				t.Errorf("causation id set: %v, want %v", set, tc.wantCausation != "")
			}
			if tc.handled != nil && !maps.Equal(tc.handled.Metadata, before) {
				t.Errorf("the handled message was modified: %v, was %v", tc.handled.Metadata, before)
			}
		})
	}
}

func TestCorrelation_StampsProducedMessages(t *testing.T) {
	in := newMsg(context.Background())
	out := message.NewMessage("out-1", nil)
	keep := message.NewMessage("out-2", nil)
	keep.Metadata.Set(millrace.MetadataCorrelationID, "other-flow")
	_, _ = middleware.Correlation(func(*message.Message) ([]*message.Message, error) {
		return []*message.Message{out, keep}, nil
	})(in)
	if in.Metadata.Get(millrace.MetadataCorrelationID) != "" {
		t.Error("the handled message was modified")
	}
	if out.Metadata.Get(millrace.MetadataCorrelationID) != "m-1" || out.Metadata.Get(millrace.MetadataCausationID) != "m-1" {
		t.Errorf("produced metadata = %v", out.Metadata)
	}
	if keep.Metadata.Get(millrace.MetadataCorrelationID) != "other-flow" {
		t.Error("an existing correlation id was overwritten")
	}
}

func TestCorrelate_SagaEntries(t *testing.T) {
	const (
		name, id, step, key = millrace.MetadataSagaName, millrace.MetadataSagaID, millrace.MetadataSagaStep, millrace.MetadataPartitionKey
	)
	saga := func(msgID string) *message.Message {
		return withMetadata(msgID, name, "order", id, "o-1", step, "charge")
	}
	for _, tc := range []struct {
		name         string
		handled, out *message.Message
		want         map[string]string
	}{
		{"a reply inherits the saga and its key", saga("cmd-1"), withMetadata("evt-1"),
			map[string]string{name: "order", id: "o-1", step: "charge", key: "o-1"}},
		{"a reply with a key of its own keeps it", saga("cmd-1"), withMetadata("evt-1", key, "payment-7"),
			map[string]string{name: "order", id: "o-1", step: "charge", key: "payment-7"}},
		{"a saga's next command keeps its own step", saga("evt-1"), withMetadata("cmd-2", name, "order", id, "o-1", step, "ship"),
			map[string]string{name: "order", id: "o-1", step: "ship", key: ""}},
		{"no saga, nothing added", withMetadata("in-1"), withMetadata("out-1"),
			map[string]string{name: "", id: "", step: "", key: ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			middleware.Correlate(tc.handled, tc.out)
			for k, v := range tc.want {
				if got := tc.out.Metadata.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}
