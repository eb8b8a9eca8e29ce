package kafka

import "github.com/ThreeDotsLabs/watermill"

// quietLogger is the Watermill logger the transport gives watermill-kafka:
// it logs watermill-kafka's info lines at debug, except those that report
// something going wrong, which stay at info.
//
// watermill-kafka logs at info that a subscription is starting ("Subscribing
// to Kafka topic", "Starting consuming") and that its consumer ended
// ("Consuming done"): a grouped subscription of the transport consumes its
// topic and its retry topic, so that was six lines per subscription on a
// clean run, one subscription per handler and unit of concurrency. An
// operator learns nothing from them that the App does not log once per
// handler ("handler started" with topic, group and concurrency). Lines not
// known here are routine too, as far as watermill-kafka's choice of level
// goes, so they are kept at debug as well; its warnings and errors are
// passed on unchanged.
type quietLogger struct{ watermill.LoggerAdapter }

// infoLines are watermill-kafka's info lines that stay at info: a consumer
// that stopped without being closed and is started again, and what made it
// stop or failed while it was closed.
var infoLines = map[string]bool{
	"Reconnecting consumer":         true,
	"Received unknown Sarama error": true,
	"Group close with error":        true,
}

func (l quietLogger) Info(msg string, fields watermill.LogFields) {
	if infoLines[msg] {
		l.LoggerAdapter.Info(msg, fields)
		return
	}
	l.LoggerAdapter.Debug(msg, fields)
}

// With keeps the demotion for the fields' logger.
func (l quietLogger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return quietLogger{l.LoggerAdapter.With(fields)}
}
