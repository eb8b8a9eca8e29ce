package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/IBM/sarama"

	"github.com/millrace/millrace"
)

// saramaConfig turns c into the Sarama config shared by the publisher and the
// subscribers. Errors name files, never credentials.
func (c *Config) saramaConfig() (*sarama.Config, error) {
	sc := sarama.NewConfig()
	sc.ClientID = c.ClientID
	// Kafka 2.1 protocol: the oldest with everything used here (idempotent
	// producer, zstd), understood by every broker since. Newer protocol
	// versions gain nothing for this client and Sarama's encodings of some
	// later group requests are not understood by every broker
	// implementation (kfake among them).
	sc.Version = sarama.V2_1_0_0

	// Publisher: a sync producer (Publish returns when the record is written).
	p := &c.Producer
	sc.Producer.Return.Successes = true
	sc.Producer.Return.Errors = true
	sc.Producer.Retry.Max = 10
	sc.Producer.Retry.Backoff = 100 * time.Millisecond
	switch p.Acks {
	case "all":
		sc.Producer.RequiredAcks = sarama.WaitForAll
	case "leader":
		sc.Producer.RequiredAcks = sarama.WaitForLocal
	case "none":
		sc.Producer.RequiredAcks = sarama.NoResponse
	}
	if p.idempotent() {
		// Sarama's requirements for an idempotent producer: acks all, at
		// least one retry, and one request in flight per broker connection,
		// so a retried batch cannot overtake the next one.
		sc.Producer.Idempotent = true
		sc.Net.MaxOpenRequests = 1
	}
	switch p.Compression {
	case "none":
		sc.Producer.Compression = sarama.CompressionNone
	case "gzip":
		sc.Producer.Compression = sarama.CompressionGZIP
	case "snappy":
		sc.Producer.Compression = sarama.CompressionSnappy
	case "lz4":
		sc.Producer.Compression = sarama.CompressionLZ4
	case "zstd":
		sc.Producer.Compression = sarama.CompressionZSTD
	}
	sc.Producer.Flush.Frequency = p.Linger
	sc.Producer.Flush.Messages = p.BatchSize
	// Messages of one key go to one partition (the hash of the key);
	// messages without key are spread at random.
	sc.Producer.Partitioner = sarama.NewHashPartitioner

	// Subscribers.
	sc.Consumer.Return.Errors = true
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	if c.InitialOffset == "newest" {
		sc.Consumer.Offsets.Initial = sarama.OffsetNewest
	}
	sc.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRange()}
	// Members learn of a rebalance at their next heartbeat: 1s instead of
	// Sarama's 3s lets a group take in a new member sooner.
	sc.Consumer.Group.Heartbeat.Interval = time.Second
	if c.fastGroups {
		sc.Consumer.Group.Heartbeat.Interval = 100 * time.Millisecond
		sc.Consumer.Group.Rebalance.Timeout = 3 * time.Second
		sc.Consumer.Group.Rebalance.Retry.Backoff = 100 * time.Millisecond
		sc.Metadata.RefreshFrequency = time.Second
	}

	// Every connection is opened by dialer, which bounds the connect, the
	// TLS handshake and the first answer by connect_timeout (and makes the
	// TLS connection: Sarama's own TLS is off). Later requests get Sarama's
	// 30s, or connect_timeout if longer.
	d := &dialer{timeout: c.ConnectTimeout, keepAlive: sc.Net.KeepAlive, hold: holds{
		produce:           sc.Producer.Timeout,
		produceUnanswered: sc.Producer.RequiredAcks == sarama.NoResponse,
		fetch:             sc.Consumer.MaxWaitTime,
		join:              sc.Consumer.Group.Rebalance.Timeout,
	}}
	if c.TLS.Enabled {
		tc, err := c.TLS.config()
		if err != nil {
			return nil, err
		}
		d.tls = tc
	}
	sc.Net.Proxy.Enable = true
	sc.Net.Proxy.Dialer = d
	sc.Net.DialTimeout = c.ConnectTimeout
	sc.Net.ReadTimeout = max(sc.Net.ReadTimeout, c.ConnectTimeout)
	sc.Net.WriteTimeout = max(sc.Net.WriteTimeout, c.ConnectTimeout)

	// Fail fast when no broker answers: a refused connection is retried 3
	// times, 250ms apart, and a metadata request, retries included, gives
	// up after connect_timeout per bootstrap broker, which lets each of
	// them time out once.
	sc.Metadata.Retry.Max = 3
	sc.Metadata.Retry.Backoff = 250 * time.Millisecond
	sc.Metadata.Timeout = c.ConnectTimeout * time.Duration(len(c.Brokers))

	if s := &c.SASL; s.Mechanism != "" {
		sc.Net.SASL.Enable = true
		sc.Net.SASL.Handshake = true
		sc.Net.SASL.User = s.Username
		sc.Net.SASL.Password = s.Password
		switch s.Mechanism {
		case "plain":
			sc.Net.SASL.Mechanism = sarama.SASLTypePlaintext
		case "scram-sha-256":
			sc.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA256
			sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return newSCRAMClient(sha256Hash) }
		case "scram-sha-512":
			sc.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
			sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return newSCRAMClient(sha512Hash) }
		}
	}

	if err := sc.Validate(); err != nil {
		return nil, fmt.Errorf("kafka: invalid client config: %w", err)
	}
	return sc, nil
}

// config loads the TLS files. A file that cannot be read or parsed is a
// *millrace.ConfigError naming its key and path (never its content).
func (t *TLSConfig) config() (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // opt-in, documented as tests only
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, &millrace.ConfigError{Key: "tls.ca_file", Value: t.CAFile, Problem: "cannot be read: " + err.Error()}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &millrace.ConfigError{Key: "tls.ca_file", Value: t.CAFile, Problem: "holds no PEM certificate"}
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, &millrace.ConfigError{Key: "tls.cert_file", Value: t.CertFile,
				Problem: "with tls.key_file " + strconv.Quote(t.KeyFile) + " is not a usable PEM certificate and key: " + err.Error()}
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
