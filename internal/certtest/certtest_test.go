package certtest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"testing"
)

func TestCertificates(t *testing.T) {
	ca := NewCA(t, "test CA")
	dir := t.TempDir()
	srv := ca.Server(t, "localhost", "127.0.0.1")
	for _, host := range []string{"localhost", "127.0.0.1"} {
		if _, err := srv.Cert.Verify(x509.VerifyOptions{DNSName: host, Roots: ca.Pool()}); err != nil {
			t.Errorf("server certificate for %s: %v", host, err)
		}
	}
	if _, err := srv.Cert.Verify(x509.VerifyOptions{DNSName: "other", Roots: ca.Pool()}); err == nil {
		t.Error("server certificate verifies for a name it does not hold")
	}
	if _, err := srv.Cert.Verify(x509.VerifyOptions{DNSName: "localhost", Roots: NewCA(t, "other").Pool()}); err == nil {
		t.Error("server certificate verifies against another CA")
	}
	cl := ca.Client(t, "gateway")
	if _, err := cl.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil || cl.Cert.Subject.CommonName != "gateway" {
		t.Errorf("client certificate: %v, CN %q", err, cl.Cert.Subject.CommonName)
	}

	f := srv.Write(t, dir, "broker")
	if _, err := tls.LoadX509KeyPair(f.Cert, f.Key); err != nil {
		t.Errorf("written pair does not load: %v", err)
	}
	chain, err := os.ReadFile(f.Chain)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for rest := chain; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		types = append(types, b.Type)
		if b.Type == "PRIVATE KEY" {
			if _, err := x509.ParsePKCS8PrivateKey(b.Bytes); err != nil {
				t.Errorf("key is not PKCS #8: %v", err)
			}
		}
	}
	if len(types) != 3 || types[0] != "PRIVATE KEY" || types[1] != "CERTIFICATE" || types[2] != "CERTIFICATE" {
		t.Errorf("chain file holds %v, want key, certificate, CA certificate", types)
	}
	caPEM, err := os.ReadFile(ca.Write(t, dir))
	if err != nil || !x509.NewCertPool().AppendCertsFromPEM(caPEM) {
		t.Errorf("CA file: %v", err)
	}
}
