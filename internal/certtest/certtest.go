// Package certtest makes throwaway X.509 certificates for tests: a
// certificate authority, server certificates for the names and addresses a
// client dials, and client certificates for mutual TLS, as Go values and as
// PEM files that a config file or another process (Apache Kafka) can read.
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
	"crypto"
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
)

// CA is a self-signed certificate authority that signs the certificates of
// one test.
type CA struct {
	// Cert is the CA's certificate.
	Cert *x509.Certificate
	// CertPEM is Cert, PEM-encoded.
	CertPEM []byte
	key     crypto.Signer
}

// Pair is a certificate signed by a CA and its private key.
type Pair struct {
	// Cert is the certificate.
	Cert *x509.Certificate
	// CertPEM is Cert, PEM-encoded.
	CertPEM []byte
	// KeyPEM is the private key, PEM-encoded PKCS #8 without a password.
	KeyPEM []byte
	// TLS is the pair as crypto/tls takes it, with the CA's certificate
	// after the leaf.
	TLS tls.Certificate
	ca  *CA
}

// Files are the paths Pair.Write wrote.
type Files struct {
	// Cert holds the certificate, PEM.
	Cert string
	// Key holds the private key, PEM PKCS #8.
	Key string
	// Chain holds the private key, then the certificate, then the CA's
	// certificate: one PEM file, as Kafka's ssl.keystore.location takes
	// with ssl.keystore.type=PEM.
	Chain string
}

// NewCA returns a new certificate authority whose subject is name.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := template(t, name)
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatalf("certtest: create CA certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("certtest: parse CA certificate: %v", err)
	}
	return &CA{Cert: cert, CertPEM: pemBlock("CERTIFICATE", der), key: key}
}

// Pool is a certificate pool holding only the CA, for a tls.Config's
// RootCAs or ClientCAs.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Write writes the CA's certificate to dir/ca.pem and returns its path.
func (ca *CA) Write(t testing.TB, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "ca.pem")
	writeFile(t, path, ca.CertPEM)
	return path
}

// Server returns a server certificate for hosts: each a DNS name
// ("localhost") or an IP address ("127.0.0.1"), put in the subject
// alternative names a client checks. The first host is also the common
// name.
func (ca *CA) Server(t testing.TB, hosts ...string) *Pair {
	t.Helper()
	if len(hosts) == 0 {
		t.Fatal("certtest: a server certificate needs at least one host name or address")
	}
	tmpl := template(t, hosts[0])
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return ca.sign(t, tmpl)
}

// Client returns a client certificate whose common name is name (Kafka's
// principal for a mutual-TLS client: User:CN=name).
func (ca *CA) Client(t testing.TB, name string) *Pair {
	t.Helper()
	tmpl := template(t, name)
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	return ca.sign(t, tmpl)
}

func (ca *CA) sign(t testing.TB, tmpl *x509.Certificate) *Pair {
	t.Helper()
	key := newKey(t)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.key)
	if err != nil {
		t.Fatalf("certtest: sign certificate for %s: %v", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("certtest: parse certificate: %v", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("certtest: encode key: %v", err)
	}
	return &Pair{
		Cert:    cert,
		CertPEM: pemBlock("CERTIFICATE", der),
		KeyPEM:  pemBlock("PRIVATE KEY", pkcs8),
		TLS:     tls.Certificate{Certificate: [][]byte{der, ca.Cert.Raw}, PrivateKey: key, Leaf: cert},
		ca:      ca,
	}
}

// Write writes the pair to dir as name.crt, name.key and name.chain.pem
// (see Files) and returns their paths. The key files are readable by the
// owner only.
func (p *Pair) Write(t testing.TB, dir, name string) Files {
	t.Helper()
	f := Files{
		Cert:  filepath.Join(dir, name+".crt"),
		Key:   filepath.Join(dir, name+".key"),
		Chain: filepath.Join(dir, name+".chain.pem"),
	}
	writeFile(t, f.Cert, p.CertPEM)
	writeFile(t, f.Key, p.KeyPEM)
	chain := append(append(append([]byte{}, p.KeyPEM...), p.CertPEM...), p.ca.CertPEM...)
	writeFile(t, f.Chain, chain)
	return f
}

func newKey(t testing.TB) crypto.Signer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("certtest: generate key: %v", err)
	}
	return key
}

func template(t testing.TB, cn string) *x509.Certificate {
	t.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatalf("certtest: serial number: %v", err)
	}
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"factorywire tests"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
	}
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatalf("certtest: %v", err)
	}
}
