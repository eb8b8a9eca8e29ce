package amqp

import (
	"strconv"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/transports"
)

// Exchange types Config.ExchangeType accepts.
const (
	// ExchangeFanout gives every topic its own fanout exchange, named like
	// the topic; each consumer group's queue <topic>.<group> is bound to it.
	ExchangeFanout = "fanout"
	// ExchangeTopic publishes every topic to one topic exchange
	// (Config.Exchange) with the topic as routing key; a group's queue is
	// bound with the subscribed topic as binding key, so subscribing to
	// "orders.*" receives "orders.placed" and "orders.paid".
	ExchangeTopic = "topic"
)

// Config is the AMQP transport's config section (transport.amqp).
//
// Start from DefaultConfig: Open does not fill in zero fields.
type Config struct {
	// URL is the broker's AMQP URI (amqp:// or amqps://). Its password is
	// never printed: errors and logs show it redacted.
	URL string `yaml:"url" millrace:"dsn"`

	// ExchangeType is "fanout" (an exchange per topic) or "topic" (one
	// exchange, Exchange, routed by topic with wildcards).
	ExchangeType string `yaml:"exchange_type"`

	// Exchange names the single exchange used when ExchangeType is "topic".
	// Ignored for "fanout".
	Exchange string `yaml:"exchange"`

	// Durable declares exchanges and queues durable: they survive a broker
	// restart.
	Durable bool `yaml:"durable"`

	// Persistent publishes messages with delivery mode persistent: on
	// durable queues they survive a broker restart.
	Persistent bool `yaml:"persistent"`

	// Prefetch is how many unacked messages the broker hands one
	// subscription at a time (basic.qos prefetch count). At least 1. The
	// default, 250, is Spring AMQP's: on a 2-core machine consumption
	// through the full middleware stack went from about 11,000 msg/s at
	// 100 to 11,500-15,500 at 250. Subscriptions sharing a queue each hold
	// up to Prefetch messages, so lower it when handlers are slow and
	// should share the work evenly.
	Prefetch int `yaml:"prefetch"`

	// PublisherConfirms makes Publish return only after the broker confirmed
	// each message (publisher confirms). Without it Publish returns once the
	// message is written to the socket; then the messages of consecutive
	// Publish calls may reach a queue out of order when PublisherChannels
	// is above 1 (the broker runs channels in parallel), and a message lost
	// with the connection goes unnoticed.
	PublisherConfirms bool `yaml:"publisher_confirms"`

	// PublisherChannels is how many AMQP channels the publisher spreads
	// Publish calls over, round robin. Calls share channels: any number run
	// concurrently, each waiting only for its own confirms, so this is not a
	// cap on concurrency but on how much of the broker's per-channel work
	// runs in parallel. At least 1.
	PublisherChannels int `yaml:"publisher_channels"`

	// Queue sets optional arguments of every consumer group's queue.
	Queue QueueConfig `yaml:"queue"`

	// TLS configures the client side of TLS; enabling it requires an amqps://
	// URL.
	TLS TLSConfig `yaml:"tls"`

	// ReconnectInitialInterval is the first wait before reconnecting after
	// the connection was lost; waits grow up to ReconnectMaxInterval.
	ReconnectInitialInterval time.Duration `yaml:"reconnect_initial_interval"`
	// ReconnectMaxInterval caps the wait between reconnection attempts.
	ReconnectMaxInterval time.Duration `yaml:"reconnect_max_interval"`
}

// Overflow policies QueueConfig.Overflow accepts: what RabbitMQ does with a
// message published to a queue that holds QueueConfig.MaxLength messages.
const (
	// OverflowDropHead drops the oldest message of the queue (RabbitMQ's
	// default). Publish succeeds.
	OverflowDropHead = "drop-head"
	// OverflowRejectPublish refuses the new message: with publisher
	// confirms, Publish returns an error.
	OverflowRejectPublish = "reject-publish"
	// OverflowRejectPublishDLX is OverflowRejectPublish that also
	// dead-letters the refused message, if the queue has a dead-letter
	// exchange.
	OverflowRejectPublishDLX = "reject-publish-dlx"
)

// QueueConfig is the queue subsection of Config: arguments every consumer
// group's queue "<topic>.<group>" is declared with. Zero values leave an
// argument out. RabbitMQ does not change the arguments of a queue that
// exists: declaring it with other ones fails (PRECONDITION_FAILED), and
// Subscribe then returns an error naming the queue and the argument; delete
// the queue (losing its messages) or keep its old settings. The queue that
// Retain declares gets none of these.
type QueueConfig struct {
	// MaxPriority makes the queues priority queues (x-max-priority) with
	// priorities 0 to MaxPriority, at most 255 (RabbitMQ advises at most
	// 10). A message's priority is its metadata MetadataPriority.
	MaxPriority int `yaml:"max_priority"`
	// MessageTTL drops (or dead-letters) a message that waited longer in
	// the queue (x-message-ttl, whole milliseconds).
	MessageTTL time.Duration `yaml:"message_ttl"`
	// MaxLength caps how many ready messages a queue holds (x-max-length);
	// Overflow says what happens beyond.
	MaxLength int `yaml:"max_length"`
	// Overflow is drop-head (the default), reject-publish or
	// reject-publish-dlx (x-overflow). Only with MaxLength.
	Overflow string `yaml:"overflow"`
	// Version is the classic queue storage version (x-queue-version, since
	// RabbitMQ 3.10) of the queues the transport creates: 2, the default,
	// takes persistent messages with about half the broker CPU of version
	// 1; 0 leaves the argument out, for brokers before 3.10. A queue that
	// exists with another version is used as it is (the log says so).
	Version int `yaml:"version"`
}

// arguments returns the queue arguments q configures, nil if none.
func (q QueueConfig) arguments() amqp091.Table {
	if q == (QueueConfig{}) {
		return nil
	}
	args := amqp091.Table{}
	if q.MaxPriority > 0 {
		args["x-max-priority"] = int32(q.MaxPriority)
	}
	if q.MessageTTL > 0 {
		args["x-message-ttl"] = q.MessageTTL.Milliseconds()
	}
	if q.MaxLength > 0 {
		args["x-max-length"] = int64(q.MaxLength)
	}
	if q.Overflow != "" {
		args["x-overflow"] = q.Overflow
	}
	if q.Version > 0 {
		args["x-queue-version"] = int32(q.Version)
	}
	return args
}

// queueArgumentKeys maps the queue arguments millrace sets to their config
// keys, for errors about queues declared differently before.
var queueArgumentKeys = map[string]string{
	"x-max-priority":  "queue.max_priority",
	"x-message-ttl":   "queue.message_ttl",
	"x-max-length":    "queue.max_length",
	"x-overflow":      "queue.overflow",
	"x-queue-version": "queue.version",
}

// TLSConfig is the tls subsection of Config.
type TLSConfig struct {
	// Enabled turns on TLS with the settings below.
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM file of CAs that verify the broker's certificate. Empty
	// means the system roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and its key, for
	// brokers that authenticate clients by certificate. Both or neither.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// InsecureSkipVerify disables verification of the broker's certificate.
	// Only for tests.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// DefaultConfig returns the defaults: a local RabbitMQ as guest, fanout
// exchanges, durable version 2 queues, persistent messages, prefetch 250,
// publisher confirms on, 8 publisher channels, reconnect after 500ms
// growing to 30s.
func DefaultConfig() *Config {
	return &Config{
		URL:                      "amqp://guest:guest@127.0.0.1:5672/",
		ExchangeType:             ExchangeFanout,
		Exchange:                 "millrace",
		Durable:                  true,
		Persistent:               true,
		Prefetch:                 250,
		PublisherConfirms:        true,
		PublisherChannels:        8,
		Queue:                    QueueConfig{Version: 2},
		ReconnectInitialInterval: 500 * time.Millisecond,
		ReconnectMaxInterval:     30 * time.Second,
	}
}

// Validate checks every field and returns a *millrace.ConfigError for each bad
// one (joined with errors.Join when there are several). Keys are relative to
// the section, for example "prefetch" or "tls.cert_file". The URL is shown
// with its password redacted.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, value, problem string) {
		errs = append(errs, &millrace.ConfigError{Key: key, Value: value, Problem: problem})
	}

	redacted := transports.RedactDSN(c.URL)
	var scheme string
	if c.URL == "" {
		bad("url", "", "must be set, for example amqp://user:password@host:5672/vhost")
	} else if uri, err := amqp091.ParseURI(c.URL); err != nil {
		// The parse error may quote the URL, so only say what is expected.
		bad("url", redacted, "not a valid AMQP URI: want amqp://user:password@host:port/vhost or amqps://...")
	} else {
		scheme = uri.Scheme
	}

	switch c.ExchangeType {
	case ExchangeFanout:
	case ExchangeTopic:
		if c.Exchange == "" {
			bad("exchange", "", `must be set when exchange_type is "topic"`)
		}
	default:
		bad("exchange_type", c.ExchangeType, `must be one of: fanout, topic`)
	}
	if c.Prefetch < 1 {
		bad("prefetch", strconv.Itoa(c.Prefetch), "must be at least 1")
	}
	if c.PublisherChannels < 1 {
		bad("publisher_channels", strconv.Itoa(c.PublisherChannels), "must be at least 1")
	}
	q := c.Queue
	if q.MaxPriority < 0 || q.MaxPriority > 255 {
		bad("queue.max_priority", strconv.Itoa(q.MaxPriority), "must be from 0 (no priorities) to 255")
	}
	if q.MessageTTL < 0 || (q.MessageTTL > 0 && q.MessageTTL < time.Millisecond) {
		bad("queue.message_ttl", q.MessageTTL.String(), "must be 0 (no TTL) or at least 1ms")
	}
	if q.MaxLength < 0 {
		bad("queue.max_length", strconv.Itoa(q.MaxLength), "must be 0 (no limit) or greater")
	}
	switch q.Overflow {
	case "":
	case OverflowDropHead, OverflowRejectPublish, OverflowRejectPublishDLX:
		if q.MaxLength == 0 {
			bad("queue.overflow", q.Overflow, "needs queue.max_length")
		}
	default:
		bad("queue.overflow", q.Overflow, "must be one of: drop-head, reject-publish, reject-publish-dlx")
	}
	if q.Version < 0 || q.Version > 2 {
		bad("queue.version", strconv.Itoa(q.Version), "must be 1 or 2, or 0 for the broker's default")
	}
	if c.TLS.Enabled && scheme != "" && scheme != "amqps" {
		bad("tls.enabled", "true", "needs an amqps:// url, got "+strconv.Quote(scheme+"://"))
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		if c.TLS.CertFile == "" {
			bad("tls.cert_file", "", "must be set together with tls.key_file")
		} else {
			bad("tls.key_file", "", "must be set together with tls.cert_file")
		}
	}
	if !c.TLS.Enabled && (c.TLS.CAFile != "" || c.TLS.CertFile != "" || c.TLS.InsecureSkipVerify) {
		bad("tls.enabled", "false", "must be true when tls.ca_file, tls.cert_file or tls.insecure_skip_verify is set")
	}
	if c.ReconnectInitialInterval <= 0 {
		bad("reconnect_initial_interval", c.ReconnectInitialInterval.String(), "must be greater than 0")
	}
	if c.ReconnectMaxInterval <= 0 || c.ReconnectMaxInterval < c.ReconnectInitialInterval {
		bad("reconnect_max_interval", c.ReconnectMaxInterval.String(),
			"must be greater than 0 and at least reconnect_initial_interval ("+c.ReconnectInitialInterval.String()+")")
	}

	return millrace.JoinConfigErrors(errs)
}

// redactedURL is the URL for logs and errors.
func (c *Config) redactedURL() string { return transports.RedactDSN(c.URL) }
