package kafka_test

import (
	"context"
	"testing"

	"github.com/millrace/millrace/transports"
	"github.com/millrace/millrace/transports/kafka"
)

func TestKind(t *testing.T) {
	k := kafka.Kind()
	if k.Name != "kafka" {
		t.Errorf("name %q", k.Name)
	}
	if _, ok := k.DefaultConfig().(*kafka.Config); !ok {
		t.Errorf("DefaultConfig returns %T", k.DefaultConfig())
	}
	if _, err := k.Open(context.Background(), struct{}{}, transports.Deps{}); err == nil {
		t.Error("open with a foreign config: want an error")
	}
}

func TestKind_OpensThroughRegistry(t *testing.T) {
	reg, err := transports.NewRegistry(kafka.Kind())
	if err != nil {
		t.Fatal(err)
	}
	tr, err := reg.Open(context.Background(), "kafka", testConfig(newCluster(t, 1)), transports.Deps{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Publisher().Close(); err != nil {
		t.Errorf("publisher close: %v", err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
}
