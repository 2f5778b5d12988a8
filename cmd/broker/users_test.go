package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/factorywire/factorywire/broker"
	"github.com/factorywire/factorywire/internal/certtest"
	"github.com/factorywire/factorywire/internal/secret"
)

// TestUsersCommands creates, lists and deletes SCRAM users on our broker
// over SASL_SSL with `broker users`, the password from a file and from
// standard input; it never shows in the output.
func TestUsersCommands(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "plant CA")
	caFile := ca.Write(t, dir)
	srv := ca.Server(t, "localhost", "127.0.0.1").Write(t, dir, "broker")
	cfg := broker.DefaultConfig()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Listeners = []broker.ListenerConfig{{Name: "SECURE", Address: "127.0.0.1:0", Protocol: "SASL_SSL",
		TLS: broker.ListenerTLS{CertFile: srv.Cert, KeyFile: srv.Key}}}
	cfg.SASL.BootstrapUsers = []broker.BootstrapUser{{Name: "admin", Password: secret.New(adminPassword)}}
	cfg.SASL.FailedAuthenticationDelay = time.Millisecond
	b, err := broker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	pwFile := filepath.Join(dir, "admin.pw")
	os.WriteFile(pwFile, []byte(adminPassword+"\n"), 0o600)
	opPw := "operator-Pa55-never-printed"
	opFile := filepath.Join(dir, "op.pw")
	os.WriteFile(opFile, []byte(opPw+"\n"), 0o600)
	conn := []string{"--brokers", b.ListenerAddr("SECURE").String(), "--tls", "--tls-ca-file", caFile,
		"--sasl-mechanism", "SCRAM-SHA-512", "--sasl-username", "admin", "--sasl-password-file", pwFile}
	cmd := func(input string, args ...string) (string, error) {
		t.Helper()
		stdin = strings.NewReader(input)
		defer func() { stdin = os.Stdin }()
		var out bytes.Buffer
		err := run(append(args, conn...), &out)
		for _, pw := range []string{adminPassword, opPw} {
			if strings.Contains(out.String(), pw) || err != nil && strings.Contains(err.Error(), pw) {
				t.Fatalf("a password shows: %v\n%s", err, out.String())
			}
		}
		return out.String(), err
	}

	if out, err := cmd("", "users", "create", "--user", "operator", "--mechanism", "SCRAM-SHA-256", "--password-file", opFile); err != nil || !strings.Contains(out, "user operator: SCRAM-SHA-256 credential set") {
		t.Fatalf("create from a file: %v\n%s", err, out)
	}
	if out, err := cmd("gw-password\n", "users", "create", "--user", "gateway-plant-a"); err != nil || strings.Count(out, "credential set") != 2 {
		t.Fatalf("create from stdin: %v\n%s", err, out)
	}
	out, err := cmd("", "users", "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"admin", "operator         SCRAM-SHA-256 (8192 iterations)", "gateway-plant-a  SCRAM-SHA-256 (8192 iterations), SCRAM-SHA-512 (8192 iterations)"} {
		if !strings.Contains(out, want) {
			t.Fatalf("users list lacks %q:\n%s", want, out)
		}
	}
	if out, err := cmd("", "users", "delete", "--user", "gateway-plant-a"); err != nil || strings.Count(out, "credential deleted") != 2 {
		t.Fatalf("delete: %v\n%s", err, out)
	}
	if out, _ := cmd("", "users", "list"); strings.Contains(out, "gateway-plant-a") {
		t.Fatalf("deleted user still listed:\n%s", out)
	}
	for _, tc := range []struct {
		input string
		args  []string
		want  string
	}{
		{"", []string{"users", "create"}, "--user: required"},
		{"", []string{"users", "create", "--user", "x"}, "the password is empty"},
		{"pw\n", []string{"users", "create", "--user", "x", "--mechanism", "MD5"}, "--mechanism"},
		{"pw\n", []string{"users", "create", "--user", "x", "--iterations", "100"}, "iterations"},
		{"", []string{"users", "delete", "--user", "ghost"}, "user ghost"},
	} {
		if _, err := cmd(tc.input, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}
