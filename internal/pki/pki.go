// Package pki makes X.509 certificates for a plant's Kafka listeners: a
// private certificate authority, server certificates for the names and
// addresses clients dial, and client certificates for mutual TLS, written
// as PEM files that our broker, Apache Kafka (ssl.keystore.type=PEM),
// librdkafka and Java clients read. `demo --secure` uses it to stand up a
// secured plant in one command; tests use it through internal/certtest.
//
// Keys are ECDSA P-256, written as unencrypted PKCS #8 ("PRIVATE KEY")
// with mode 0600. A production plant with its own PKI does not need this
// package: give the broker and the clients that PKI's files.
//
//	ca, _ := pki.NewCA("plant-a CA", 365*24*time.Hour)
//	srv, _ := ca.Server(365*24*time.Hour, "broker.plant-a.example", "10.0.0.5")
//	files, _ := srv.Write(dir, "broker") // files.Cert, files.Key, files.Chain
//	caFile, _ := ca.Write(dir)            // dir/ca.pem
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Organization is the O of every subject this package makes.
const Organization = "factorywire"

// CA is a self-signed certificate authority.
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

// NewCA returns a new certificate authority named name, valid from an hour
// ago (clocks differ) for valid.
func NewCA(name string, valid time.Duration) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: generate the CA key: %w", err)
	}
	tmpl, err := template(name, valid)
	if err != nil {
		return nil, err
	}
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("pki: create the CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parse the CA certificate: %w", err)
	}
	return &CA{Cert: cert, CertPEM: pemBlock("CERTIFICATE", der), key: key}, nil
}

// Pool is a certificate pool holding only the CA, for a tls.Config's
// RootCAs or ClientCAs.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Write writes the CA's certificate to dir/ca.pem and returns its path.
func (ca *CA) Write(dir string) (string, error) {
	path := filepath.Join(dir, "ca.pem")
	return path, writeFile(path, ca.CertPEM)
}

// Server returns a server certificate valid for valid, for hosts: each a
// DNS name ("localhost") or an IP address ("127.0.0.1"), put in the
// subject alternative names a client checks. The first host is also the
// common name.
func (ca *CA) Server(valid time.Duration, hosts ...string) (*Pair, error) {
	if len(hosts) == 0 {
		return nil, errors.New("pki: a server certificate needs at least one host name or address")
	}
	tmpl, err := template(hosts[0], valid)
	if err != nil {
		return nil, err
	}
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return ca.sign(tmpl)
}

// Client returns a client certificate valid for valid whose common name is
// name: on a listener with mutual TLS its principal is
// User:CN=name,O=factorywire, or what the listener's principal mapping
// rules make of that subject.
func (ca *CA) Client(valid time.Duration, name string) (*Pair, error) {
	tmpl, err := template(name, valid)
	if err != nil {
		return nil, err
	}
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	return ca.sign(tmpl)
}

func (ca *CA) sign(tmpl *x509.Certificate) (*Pair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: generate a key: %w", err)
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.key)
	if err != nil {
		return nil, fmt.Errorf("pki: sign the certificate of %s: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parse a certificate: %w", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: encode a key: %w", err)
	}
	return &Pair{
		Cert:    cert,
		CertPEM: pemBlock("CERTIFICATE", der),
		KeyPEM:  pemBlock("PRIVATE KEY", pkcs8),
		TLS:     tls.Certificate{Certificate: [][]byte{der, ca.Cert.Raw}, PrivateKey: key, Leaf: cert},
		ca:      ca,
	}, nil
}

// Write writes the pair to dir as name.crt, name.key and name.chain.pem
// (see Files), readable by the owner only, and returns their paths.
func (p *Pair) Write(dir, name string) (Files, error) {
	f := Files{
		Cert:  filepath.Join(dir, name+".crt"),
		Key:   filepath.Join(dir, name+".key"),
		Chain: filepath.Join(dir, name+".chain.pem"),
	}
	chain := append(append(append([]byte{}, p.KeyPEM...), p.CertPEM...), p.ca.CertPEM...)
	for _, w := range []struct {
		path string
		data []byte
	}{{f.Cert, p.CertPEM}, {f.Key, p.KeyPEM}, {f.Chain, chain}} {
		if err := writeFile(w.path, w.data); err != nil {
			return Files{}, err
		}
	}
	return f, nil
}

func template(cn string, valid time.Duration) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("pki: serial number: %w", err)
	}
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{Organization}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(valid),
	}, nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func writeFile(path string, data []byte) error {
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return nil
}
