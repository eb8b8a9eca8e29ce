package kafka

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/transports"
)

// Config is the Kafka transport's config section (transport.kafka).
//
// Start from DefaultConfig; Validate reports every bad key at once.
type Config struct {
	// Brokers are the bootstrap brokers, host:port. At least one. The
	// client learns the rest of the cluster from them.
	Brokers []string `yaml:"brokers"`

	// ClientID names this service to the brokers (their logs, metrics and
	// client quotas). Letters, digits, '.', '_' and '-'. Default "millrace".
	ClientID string `yaml:"client_id"`

	// ConnectTimeout bounds connecting to a broker, for every connection the
	// transport opens (the publisher's, each subscription's, Lag's and
	// Browse's, to bootstrap brokers and to the brokers they learn of): the
	// TCP connect and TLS handshake together, and then the broker's answer
	// to the first request on the connection. Opening a client asks the
	// bootstrap brokers in turn, so Open, Subscribe, Lag and Browse fail
	// after at most ConnectTimeout per bootstrap broker when none answers,
	// with an error naming transport.kafka.connect_timeout and the broker.
	// A first request that a broker may rightly hold gets that hold on top
	// (a produce waits for the replicas up to 10s, a fetch for data up to
	// 500ms, a consumer group join for the rebalance up to 60s). Requests on
	// a connection that answered wait up to 30s (or ConnectTimeout, if
	// longer). Default 10s; must be greater than 0.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`

	// InitialOffset is where a consumer group that has no committed offset
	// for a partition starts: "oldest" (every retained message) or "newest"
	// (only messages published after the group joined).
	InitialOffset string `yaml:"initial_offset"`

	// Producer tunes the publisher.
	Producer ProducerConfig `yaml:"producer"`

	// TLS encrypts connections to the brokers.
	TLS TLSConfig `yaml:"tls"`

	// SASL authenticates to the brokers.
	SASL SASLConfig `yaml:"sasl"`

	// fastGroups shortens consumer group heartbeats and rebalance timeouts
	// for tests (set by export_test.go).
	fastGroups bool
}

// ProducerConfig tunes how messages are written.
type ProducerConfig struct {
	// Acks is how many replicas must have a record before a publish
	// returns: "all" (every in-sync replica; the only durable choice),
	// "leader" or "none".
	Acks string `yaml:"acks"`

	// Idempotent makes the broker drop duplicates of a record the producer
	// retried, so a retry never writes a message twice nor reorders one key.
	// Requires acks "all". Nil means true when acks is "all".
	Idempotent *bool `yaml:"idempotent"`

	// Compression is the record batch codec: none, gzip, snappy, lz4, zstd.
	Compression string `yaml:"compression"`

	// Linger is how long the producer waits to fill a batch before sending
	// it. 0 (the default) sends at once. Publish writes one message at a
	// time and waits for it, so a linger delays every Publish by up to
	// Linger and batches only what several goroutines publish meanwhile:
	// set it for many concurrent publishers, not for one. Must not be
	// negative.
	Linger time.Duration `yaml:"linger"`

	// BatchSize is how many messages trigger sending a batch before Linger
	// has passed. 0 means no count limit. Must not be negative, and needs a
	// linger: without one a batch would wait for BatchSize messages forever.
	BatchSize int `yaml:"batch_size"`
}

// TLSConfig encrypts connections with TLS.
type TLSConfig struct {
	// Enabled turns TLS on. The other keys are ignored when it is false.
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM file of CAs to trust instead of the system pool.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and its key, for
	// brokers that authenticate clients by certificate. Both or neither.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is the name the broker certificates must carry. Empty
	// means the host of the broker address, which is right unless brokers
	// are addressed by IP or through a proxy.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify accepts any broker certificate. For tests only;
	// Open logs a warning when it is set.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// SASLConfig authenticates with SASL. Mechanism "" turns it off.
type SASLConfig struct {
	// Mechanism is "plain", "scram-sha-256" or "scram-sha-512", or empty for
	// no SASL. PLAIN sends the password in the clear: use it with TLS (Open
	// logs a warning when TLS is off).
	Mechanism string `yaml:"mechanism"`
	// Username and Password are the credentials; both are required when
	// Mechanism is set. The password never appears in logs or errors.
	Username string `yaml:"username"`
	Password string `yaml:"password" millrace:"secret"`
}

// String shows the mechanism and username, and the password only as
// transports.Redacted, so printing a config (%v, %+v) never shows it.
func (s SASLConfig) String() string {
	return "{Mechanism:" + s.Mechanism + " Username:" + s.Username + " Password:" + s.redacted() + "}"
}

// redacted is transports.Redacted for a set password, "" for none.
func (s SASLConfig) redacted() string {
	if s.Password == "" {
		return ""
	}
	return transports.Redacted
}

// GoString is String, for %#v.
func (s SASLConfig) GoString() string { return "kafka.SASLConfig" + s.String() }

// MarshalJSON writes s with its password redacted, so a config logged by a
// JSON log handler or dumped as JSON never shows it.
func (s SASLConfig) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{"mechanism": s.Mechanism, "username": s.Username, "password": s.redacted()})
}

// LogValue logs s with its password redacted.
func (s SASLConfig) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("mechanism", s.Mechanism),
		slog.String("username", s.Username),
		slog.String("password", s.redacted()),
	)
}

// Allowed values, in the order errors list them.
var (
	initialOffsets = []string{"oldest", "newest"}
	acksValues     = []string{"all", "leader", "none"}
	compressions   = []string{"none", "gzip", "snappy", "lz4", "zstd"}
	mechanisms     = []string{"plain", "scram-sha-256", "scram-sha-512"}
)

// DefaultConfig returns the defaults: a broker on 127.0.0.1:9092, client id
// "millrace", a connect timeout of 10s, new groups start at the oldest
// retained message, and the
// producer waits for all in-sync replicas, is idempotent, compresses with
// snappy and sends every message at once (no linger).
//
// Topics are not created by millrace: publishing to a topic, subscribing to
// it and Delay's retry topics rely on the brokers' auto.create.topics.enable
// (on by default in Kafka, off in many managed services), or on topics
// created beforehand.
func DefaultConfig() *Config {
	return &Config{
		Brokers:        []string{"127.0.0.1:9092"},
		ClientID:       "millrace",
		ConnectTimeout: 10 * time.Second,
		InitialOffset:  "oldest",
		Producer: ProducerConfig{
			Acks:        "all",
			Compression: "snappy",
		},
	}
}

// idempotent reports whether the producer is idempotent: as configured, or
// by default when acks is "all".
func (p *ProducerConfig) idempotent() bool {
	if p.Idempotent != nil {
		return *p.Idempotent
	}
	return p.Acks == "all"
}

// Validate checks every field and returns a *millrace.ConfigError for each bad
// one (joined with errors.Join when there are several). Keys are relative to
// the section, for example "producer.acks". The SASL password is never put
// in an error.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, value, problem string) {
		errs = append(errs, &millrace.ConfigError{Key: key, Value: value, Problem: problem})
	}
	oneOf := func(key, value string, allowed []string) {
		if !slices.Contains(allowed, value) {
			bad(key, value, "must be one of: "+strings.Join(allowed, ", "))
		}
	}

	if len(c.Brokers) == 0 {
		bad("brokers", "", "at least one broker (host:port) is required")
	}
	for i, b := range c.Brokers {
		if !validHostPort(b) {
			bad("brokers."+strconv.Itoa(i), b, "must be host:port (one broker per list item, no scheme)")
		}
	}
	if !validClientID.MatchString(c.ClientID) {
		bad("client_id", c.ClientID, "must be one or more letters, digits, '.', '_' or '-'")
	}
	if c.ConnectTimeout <= 0 {
		bad("connect_timeout", c.ConnectTimeout.String(), "must be greater than 0")
	}
	oneOf("initial_offset", c.InitialOffset, initialOffsets)

	p := &c.Producer
	oneOf("producer.acks", p.Acks, acksValues)
	if p.Idempotent != nil && *p.Idempotent && p.Acks != "all" {
		bad("producer.idempotent", "true", `requires producer.acks "all" (got "`+p.Acks+`")`)
	}
	oneOf("producer.compression", p.Compression, compressions)
	if p.Linger < 0 {
		bad("producer.linger", p.Linger.String(), "must be 0 or greater")
	}
	if p.BatchSize < 0 {
		bad("producer.batch_size", strconv.Itoa(p.BatchSize), "must be 0 or greater")
	} else if p.BatchSize > 0 && p.Linger == 0 {
		bad("producer.batch_size", strconv.Itoa(p.BatchSize), "needs producer.linger greater than 0, or a batch would wait for that many messages")
	}

	if t := &c.TLS; t.Enabled {
		if (t.CertFile == "") != (t.KeyFile == "") {
			bad("tls.cert_file", t.CertFile, "tls.cert_file and tls.key_file must be given together")
		} else if _, err := t.config(); err != nil {
			var ce *millrace.ConfigError
			if errors.As(err, &ce) {
				errs = append(errs, ce)
			} else {
				return err
			}
		}
	}

	if s := &c.SASL; s.Mechanism != "" {
		oneOf("sasl.mechanism", s.Mechanism, mechanisms)
		if s.Username == "" {
			bad("sasl.username", "", "required when sasl.mechanism is set")
		}
		if s.Password == "" {
			bad("sasl.password", "", "required when sasl.mechanism is set")
		}
	} else if c.SASL.Username != "" || c.SASL.Password != "" {
		bad("sasl.mechanism", "", "required when sasl.username or sasl.password is set; one of: "+strings.Join(mechanisms, ", "))
	}

	return millrace.JoinConfigErrors(errs)
}

// validClientID is what Kafka brokers before 1.0 accept as client.id, and
// what is safe in every broker's logs and quota configs.
var validClientID = regexp.MustCompile(`\A[A-Za-z0-9._-]+\z`)

// validHostPort reports whether s is host:port with a port in range and a
// host without scheme, path, spaces or list separators.
func validHostPort(s string) bool {
	host, portStr, err := net.SplitHostPort(s)
	if err != nil || host == "" || strings.ContainsAny(host, "/, \t@") {
		return false
	}
	port, err := strconv.Atoi(portStr)
	return err == nil && port > 0 && port < 65536
}
