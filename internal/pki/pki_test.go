package pki

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"testing"
	"time"
)

// TestMutualTLS: a server certificate for a name and an address and a
// client certificate, both from a new CA, complete a mutual TLS handshake
// through files read back as crypto/tls reads them, and the key files are
// the owner's only.
func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, err := NewCA("plant CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	caFile, err := ca.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.Server(time.Hour, "localhost", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cli, err := ca.Client(time.Hour, "gateway-plant-a")
	if err != nil {
		t.Fatal(err)
	}
	sf, err := srv.Write(dir, "broker")
	if err != nil {
		t.Fatal(err)
	}
	cf, err := cli.Write(dir, "gateway")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{caFile, sf.Cert, sf.Key, sf.Chain, cf.Key} {
		if st, err := os.Stat(f); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, mode %v", f, err, st.Mode())
		}
	}
	pool := x509.NewCertPool()
	raw, _ := os.ReadFile(caFile)
	pool.AppendCertsFromPEM(raw)
	srvPair, err := tls.LoadX509KeyPair(sf.Cert, sf.Key)
	if err != nil {
		t.Fatal(err)
	}
	cliPair, err := tls.LoadX509KeyPair(cf.Cert, cf.Key)
	if err != nil {
		t.Fatal(err)
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	server := tls.Server(a, &tls.Config{Certificates: []tls.Certificate{srvPair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert})
	client := tls.Client(b, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{cliPair}})
	errc := make(chan error, 1)
	go func() { errc <- server.Handshake() }()
	if err := client.Handshake(); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	if got := server.ConnectionState().PeerCertificates[0].Subject.String(); got != "CN=gateway-plant-a,O=factorywire" {
		t.Fatalf("client subject %q", got)
	}
	if _, err := ca.Server(time.Hour); err == nil {
		t.Fatal("a server certificate without hosts was made")
	}
}
