package main

import (
	"testing"

	"github.com/millrace/millrace/transports/kafka/kafkatest"
)

func TestMain(m *testing.M) { kafkatest.VerifyTestMain(m) }
