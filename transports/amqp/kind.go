package amqp

import "github.com/millrace/millrace/transports"

// Kind describes the AMQP transport for a [transports.Registry]: it is
// selected by transport.kind "amqp", configured by the section
// transport.amqp (a *[Config], defaults from [DefaultConfig]) and opened
// with [Open].
func Kind() transports.Kind {
	return transports.NewKind("amqp", DefaultConfig, Open)
}
