package kafka

import "github.com/millrace/millrace/transports"

// Kind describes the Kafka transport for a [transports.Registry]: it is
// selected by transport.kind "kafka", configured by the section
// transport.kafka (a *[Config], defaults from [DefaultConfig]) and opened
// with [Open].
func Kind() transports.Kind {
	return transports.NewKind("kafka", DefaultConfig, Open)
}
