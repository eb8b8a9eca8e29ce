package kafka_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/transports"
	"github.com/millrace/millrace/transports/kafka"
	"github.com/millrace/millrace/transports/transporttest"
)

// recorder is a slog.Handler that keeps every record at or above level.
type recorder struct {
	level slog.Level
	mu    *sync.Mutex
	recs  *[]slog.Record
}

func newRecorder(level slog.Level) recorder {
	return recorder{level: level, mu: new(sync.Mutex), recs: new([]slog.Record)}
}

func (r recorder) Enabled(_ context.Context, l slog.Level) bool { return l >= r.level }

func (r recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	*r.recs = append(*r.recs, rec.Clone())
	return nil
}

func (r recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r recorder) WithGroup(string) slog.Handler      { return r }

// lines returns "LEVEL message" of the records at or above level.
func (r recorder) lines(level slog.Level) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, rec := range *r.recs {
		if rec.Level >= level {
			out = append(out, rec.Level.String()+" "+rec.Message)
		}
	}
	return out
}

// lifecycle opens a transport logging to logger, consumes a message with a
// consumer group's subscription and an ephemeral one, and closes everything.
func lifecycle(t *testing.T, brokers []string, logger *slog.Logger) {
	t.Helper()
	tr, err := kafka.Open(context.Background(), *testConfig(brokers), transports.Deps{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := tr.Subscriber("billing")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	grouped := transporttest.Subscribe(t, ctx, sub, "orders")
	own, err := tr.SubscribeEphemeral(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Publisher().Publish("orders", message.NewMessage("m1", []byte("x"))); err != nil {
		t.Fatal(err)
	}
	transporttest.Receive(t, grouped, 20*time.Second)
	transporttest.Receive(t, own, 20*time.Second)
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestLogs_CleanRunSaysNothingAtInfo: opening the transport, consuming with
// a consumer group's subscription and an ephemeral one, and closing them
// logs nothing at INFO or above. The App already logs, at INFO, that the
// service started and stopped and each handler's topic, group and
// concurrency; watermill-kafka's lines that a subscription starts
// ("Subscribing to Kafka topic", "Starting consuming", twice per grouped
// subscription: its topic and its retry topic) and that its consumer ended
// ("Consuming done") are kept at DEBUG, which the test checks too.
func TestLogs_CleanRunSaysNothingAtInfo(t *testing.T) {
	brokers := newCluster(t, 2)
	rec := newRecorder(slog.LevelDebug)
	lifecycle(t, brokers, slog.New(rec))
	if got := rec.lines(slog.LevelInfo); len(got) != 0 {
		t.Errorf("a clean run logged at INFO or above:\n%v", got)
	}
	debug := rec.lines(slog.LevelDebug)
	for _, want := range []string{"DEBUG Subscribing to Kafka topic", "DEBUG Starting consuming", "DEBUG Consuming done"} {
		if !slices.Contains(debug, want) {
			t.Errorf("%q missing at DEBUG:\n%v", want, debug)
		}
	}
}

// TestQuietLogger_Levels: watermill-kafka's routine info lines go to DEBUG;
// those about a consumer that stopped unexpectedly stay at INFO; debug,
// warnings and errors are unchanged, also through With.
func TestQuietLogger_Levels(t *testing.T) {
	tests := []struct {
		log  func(l watermill.LoggerAdapter)
		want string
	}{
		{func(l watermill.LoggerAdapter) { l.Info("Subscribing to Kafka topic", nil) }, "DEBUG Subscribing to Kafka topic"},
		{func(l watermill.LoggerAdapter) { l.Info("Starting consuming", nil) }, "DEBUG Starting consuming"},
		{func(l watermill.LoggerAdapter) { l.Info("Consuming done", nil) }, "DEBUG Consuming done"},
		{func(l watermill.LoggerAdapter) { l.Info("Created Kafka topic", nil) }, "DEBUG Created Kafka topic"},
		{func(l watermill.LoggerAdapter) { l.Info("Reconnecting consumer", nil) }, "INFO Reconnecting consumer"},
		{func(l watermill.LoggerAdapter) { l.Info("Received unknown Sarama error", nil) }, "INFO Received unknown Sarama error"},
		{func(l watermill.LoggerAdapter) { l.Info("Group close with error", nil) }, "INFO Group close with error"},
		{func(l watermill.LoggerAdapter) { l.Debug("Message claimed", nil) }, "DEBUG Message claimed"},
		{func(l watermill.LoggerAdapter) { l.Error("Group consume error", errors.New("x"), nil) }, "ERROR Group consume error"},
		{func(l watermill.LoggerAdapter) { l.With(watermill.LogFields{"topic": "t"}).Info("Consuming done", nil) }, "DEBUG Consuming done"},
		{func(l watermill.LoggerAdapter) {
			l.With(watermill.LogFields{"topic": "t"}).Info("Reconnecting consumer", nil)
		}, "INFO Reconnecting consumer"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			rec := newRecorder(watermill.LevelTrace)
			tt.log(kafka.QuietLogger(watermill.NewSlogLogger(slog.New(rec))))
			if got := rec.lines(watermill.LevelTrace); !slices.Equal(got, []string{tt.want}) {
				t.Errorf("logged %v, want %q", got, tt.want)
			}
		})
	}
}
