package main

import (
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/factorywire/factorywire/internal/certtest"
)

// TestServeSecuredReloadsTLSOnSIGHUP runs `broker serve` with a SASL_SSL
// listener from the config file and its first administrator from
// --bootstrap-user: a SCRAM client produces; after the certificate files
// are replaced and SIGHUP is sent, new connections get the new certificate
// and the client connected before keeps producing; a key that does not
// load leaves the certificate in place, logged with the file.
func TestServeSecuredReloadsTLSOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "plant CA")
	srv := ca.Server(t, "127.0.0.1").Write(t, dir, "broker")
	pwFile := filepath.Join(dir, "admin.password")
	os.WriteFile(pwFile, []byte(adminPassword+"\n"), 0o600)
	cfg := filepath.Join(dir, "broker.yaml")
	os.WriteFile(cfg, []byte(`data_dir: `+filepath.Join(dir, "data")+`
listeners:
  - name: PLANT
    address: 127.0.0.1:0
    protocol: SASL_SSL
    sasl_mechanisms: [SCRAM-SHA-512]
    tls:
      cert_file: `+srv.Cert+`
      key_file: `+srv.Key+`
authorization:
  enabled: true
  super_users: [User:admin]
`), 0o644)
	cmd, addr, log := startServe(t, nil, "--config", cfg, "--bootstrap-user", "admin", "--bootstrap-password-file", pwFile)
	tlsCfg := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DialTLSConfig(tlsCfg.Clone()),
		kgo.SASL(scram.Auth{User: "admin", Pass: adminPassword}.AsSha512Mechanism()),
		kgo.DefaultProduceTopic("reload"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "reload"); err != nil {
		t.Fatalf("create a topic over SASL_SSL: %v\n%s", err, log)
	}
	produce := func(v string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return cl.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr()
	}
	if err := produce("before"); err != nil {
		t.Fatalf("produce over SASL_SSL: %v\n%s", err, log)
	}
	serial := func() string {
		c, err := tls.Dial("tcp", addr, tlsCfg.Clone())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	fresh := ca.Server(t, "127.0.0.1")
	os.WriteFile(srv.Cert, fresh.CertPEM, 0o600)
	os.WriteFile(srv.Key, fresh.KeyPEM, 0o600)
	waitLog := func(what string, re *regexp.Regexp, n int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for len(re.FindAllString(log.String(), -1)) < n {
			if time.Now().After(deadline) {
				t.Fatalf("no log line %s:\n%s", what, log)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	cmd.Process.Signal(syscall.SIGHUP)
	waitLog("saying the certificate was reloaded", regexp.MustCompile(`TLS certificate reloaded.*listener=PLANT`), 1)
	if got := serial(); got != fresh.Cert.SerialNumber.String() {
		t.Fatalf("after SIGHUP the listener shows certificate %s, want %s", got, fresh.Cert.SerialNumber)
	}
	if err := produce("after"); err != nil {
		t.Fatalf("the client connected before SIGHUP: %v", err)
	}
	os.WriteFile(srv.Key, []byte("garbage"), 0o600)
	cmd.Process.Signal(syscall.SIGHUP)
	waitLog("naming the key that failed", regexp.MustCompile(`TLS reload failed.*`+regexp.QuoteMeta(srv.Key)), 1)
	if got := serial(); got != fresh.Cert.SerialNumber.String() {
		t.Fatalf("a failed reload changed the certificate to %s", got)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, log)
	}
	if strings.Contains(log.String(), adminPassword) {
		t.Fatal("the password is logged")
	}
}
