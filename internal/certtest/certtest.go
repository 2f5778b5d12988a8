// Package certtest makes throwaway X.509 certificates for tests: a
// certificate authority, server certificates for the names and addresses a
// client dials, and client certificates for mutual TLS, as Go values and as
// PEM files that a config file or another process (Apache Kafka) can read.
// It is internal/pki with a test's failure handling.
//
// Keys are ECDSA P-256, written as unencrypted PKCS #8 ("PRIVATE KEY"),
// which Go, Java 17 (Kafka's ssl.keystore.type=PEM) and OpenSSL all read.
// Certificates are valid from an hour ago for a day.
//
//	ca := certtest.NewCA(t, "test CA")
//	srv := ca.Server(t, "localhost", "127.0.0.1")
//	files := srv.Write(t, t.TempDir(), "broker") // files.Cert, files.Key, files.Chain
//	caFile := ca.Write(t, dir)                    // the CA certificate, PEM
//	serverTLS := &tls.Config{Certificates: []tls.Certificate{srv.TLS}}
//
// Each call generates new keys; nothing is cached between tests.
package certtest

import (
	"testing"
	"time"

	"github.com/factorywire/factorywire/internal/pki"
)

// valid is how long the certificates are valid.
const valid = 24 * time.Hour

// CA is a self-signed certificate authority that signs the certificates of
// one test. Cert, CertPEM and Pool are pki.CA's.
type CA struct{ *pki.CA }

// Pair is a certificate signed by a CA and its private key: Cert, CertPEM,
// KeyPEM and TLS are pki.Pair's.
type Pair struct{ *pki.Pair }

// Files are the paths Pair.Write wrote.
type Files = pki.Files

// NewCA returns a new certificate authority whose subject is name.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	ca, err := pki.NewCA(name, valid)
	if err != nil {
		t.Fatalf("certtest: %v", err)
	}
	return &CA{ca}
}

// Write writes the CA's certificate to dir/ca.pem and returns its path.
func (ca *CA) Write(t testing.TB, dir string) string {
	t.Helper()
	path, err := ca.CA.Write(dir)
	if err != nil {
		t.Fatalf("certtest: %v", err)
	}
	return path
}

// Server returns a server certificate for hosts: each a DNS name
// ("localhost") or an IP address ("127.0.0.1"), put in the subject
// alternative names a client checks. The first host is also the common
// name.
func (ca *CA) Server(t testing.TB, hosts ...string) *Pair {
	t.Helper()
	p, err := ca.CA.Server(valid, hosts...)
	if err != nil {
		t.Fatalf("certtest: %v", err)
	}
	return &Pair{p}
}

// Client returns a client certificate whose common name is name (Kafka's
// principal for a mutual-TLS client: User:CN=name,O=factorywire).
func (ca *CA) Client(t testing.TB, name string) *Pair {
	t.Helper()
	p, err := ca.CA.Client(valid, name)
	if err != nil {
		t.Fatalf("certtest: %v", err)
	}
	return &Pair{p}
}

// Write writes the pair to dir as name.crt, name.key and name.chain.pem
// (see Files) and returns their paths. The key files are readable by the
// owner only.
func (p *Pair) Write(t testing.TB, dir, name string) Files {
	t.Helper()
	f, err := p.Pair.Write(dir, name)
	if err != nil {
		t.Fatalf("certtest: %v", err)
	}
	return f
}
