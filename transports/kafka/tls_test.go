package kafka_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/millrace/millrace/transports"
	"github.com/millrace/millrace/transports/kafka"
)

// testPKI is a CA, a broker certificate for 127.0.0.1 and "kafka.test",
// and a client certificate, written as PEM files to a temporary directory.
type testPKI struct {
	caFile, certFile, keyFile string // CA; client certificate and key
	server                    tls.Certificate
	pool                      *x509.CertPool
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := newKey()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
		k := newKey()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "kafka.test"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			DNSNames: []string{"kafka.test"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, k
	}
	pemOf := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	keyPEM := func(k *ecdsa.PrivateKey) []byte {
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pemOf("EC PRIVATE KEY", der)
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	p := &testPKI{pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	p.caFile = write("ca.pem", pemOf("CERTIFICATE", caDER))
	srvDER, srvKey := issue(2, x509.ExtKeyUsageServerAuth)
	if p.server, err = tls.X509KeyPair(pemOf("CERTIFICATE", srvDER), keyPEM(srvKey)); err != nil {
		t.Fatal(err)
	}
	cliDER, cliKey := issue(3, x509.ExtKeyUsageClientAuth)
	p.certFile = write("client.pem", pemOf("CERTIFICATE", cliDER))
	p.keyFile = write("client-key.pem", keyPEM(cliKey))
	return p
}

// roundTrip publishes a message on tr and receives it in a new group.
func roundTrip(t *testing.T, tr *kafka.Transport) {
	t.Helper()
	sub, err := tr.Subscriber("g")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ch, err := sub.Subscribe(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Publisher().Publish("t", message.NewMessage("tls-1", []byte("x"))); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-ch:
		if m.UUID != "tls-1" {
			t.Fatalf("got %s", m.UUID)
		}
		m.Ack()
	case <-ctx.Done():
		t.Fatal("message not received")
	}
}

// TestOpen_TLS connects to a broker that requires TLS and a client
// certificate, trusting the broker by tls.ca_file; connecting without the
// CA, or expecting another server name, fails.
func TestOpen_TLS(t *testing.T) {
	pki := newTestPKI(t)
	brokers := newCluster(t, 1, kfake.TLS(&tls.Config{
		Certificates: []tls.Certificate{pki.server},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pki.pool,
		MinVersion:   tls.VersionTLS12,
	}))
	mtls := kafka.TLSConfig{Enabled: true, CAFile: pki.caFile, CertFile: pki.certFile, KeyFile: pki.keyFile}

	t.Run("verified with client certificate", func(t *testing.T) {
		cfg := testConfig(brokers)
		cfg.TLS = mtls
		cfg.TLS.ServerName = "kafka.test"
		roundTrip(t, openTransport(t, cfg))
	})

	for _, tc := range []struct {
		name   string
		change func(*kafka.TLSConfig)
	}{
		{"unknown CA", func(c *kafka.TLSConfig) { c.CAFile = "" }},
		{"other server name", func(c *kafka.TLSConfig) { c.ServerName = "other.test" }},
		{"no client certificate", func(c *kafka.TLSConfig) { c.CertFile, c.KeyFile = "", "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(brokers)
			cfg.TLS = mtls
			tc.change(&cfg.TLS)
			tr, err := kafka.Open(context.Background(), *cfg, transports.Deps{Logger: testLogger()})
			if err == nil {
				_ = tr.Close()
				t.Fatal("open succeeded, want an error")
			}
		})
	}
}
