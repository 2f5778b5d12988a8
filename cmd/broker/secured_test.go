package main

import (
	"bytes"
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/factorywire/factorywire/internal/certtest"
)

// adminPassword is the SASL password of the secured admin tests.
const adminPassword = "admin-Pa55-never-printed"

// TestAdminSecuredCluster runs the admin commands against a SASL_SSL
// listener (kfake, SCRAM-SHA-512), configured by flags and by their
// environment twins; the failures retrying cannot fix exit 1 at once with
// the broker, the mechanism and the cause; flag mistakes exit 2 naming the
// flag. The password shows nowhere.
func TestAdminSecuredCluster(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "cluster CA")
	caFile := ca.Write(t, dir)
	otherCA := certtest.NewCA(t, "another CA").Write(t, t.TempDir())
	srv := ca.Server(t, "localhost", "127.0.0.1")
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{srv.TLS}}),
		kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "admin", adminPassword))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	addr := cluster.ListenAddrs()[0]
	pwFile := filepath.Join(dir, "password")
	if err := os.WriteFile(pwFile, []byte(adminPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FW_ADMIN_TEST_PASSWORD", adminPassword)
	t.Setenv("FW_ADMIN_TEST_WRONG", "wrong-"+adminPassword)
	secured := []string{"--brokers", addr, "--tls", "--tls-ca-file", caFile, "--sasl-mechanism", "SCRAM-SHA-512", "--sasl-username", "admin"}
	with := func(extra ...string) []string { return append(append([]string{}, secured...), extra...) }
	cmd := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(args, &out)
		return out.String(), err
	}
	check := func(t *testing.T, out string, err error) {
		t.Helper()
		if strings.Contains(out, adminPassword) || err != nil && strings.Contains(err.Error(), adminPassword) {
			t.Fatalf("the password shows: %v\n%s", err, out)
		}
	}

	t.Run("flags", func(t *testing.T) {
		out, err := cmd(append([]string{"topics", "create", "--factory", "plant-a", "--classes", "press"}, with("--sasl-password-file", pwFile)...)...)
		check(t, out, err)
		if err != nil || !strings.Contains(out, "plant-a.press") {
			t.Fatalf("topics create: %v\n%s", err, out)
		}
		out, err = cmd(append([]string{"topics", "list"}, with("--sasl-password-env", "FW_ADMIN_TEST_PASSWORD")...)...)
		check(t, out, err)
		if err != nil || !strings.Contains(out, "plant-a.press") {
			t.Fatalf("topics list: %v\n%s", err, out)
		}
	})
	t.Run("environment twins", func(t *testing.T) {
		for k, v := range map[string]string{
			"FACTORYWIRE_BROKER_BROKERS": addr, "FACTORYWIRE_BROKER_TLS": "true", "FACTORYWIRE_BROKER_TLS_CA_FILE": caFile,
			"FACTORYWIRE_BROKER_SASL_MECHANISM": "SCRAM-SHA-512", "FACTORYWIRE_BROKER_SASL_USERNAME": "admin",
			"FACTORYWIRE_BROKER_SASL_PASSWORD_ENV": "FW_ADMIN_TEST_PASSWORD",
		} {
			t.Setenv(k, v)
		}
		out, err := cmd("groups", "list")
		check(t, out, err)
		if err != nil || !strings.Contains(out, "GROUP") {
			t.Fatalf("groups list: %v\n%s", err, out)
		}
	})

	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"wrong password", with("--sasl-password-env", "FW_ADMIN_TEST_WRONG"),
			[]string{`(TLS, SASL SCRAM-SHA-512 as "admin")`, "SASL authentication failed"}},
		{"unknown user", append(with("--sasl-password-env", "FW_ADMIN_TEST_PASSWORD"), "--sasl-username", "nobody"),
			[]string{`SASL SCRAM-SHA-512 as "nobody"`, "SASL authentication failed"}},
		{"untrusted certificate", append(with("--sasl-password-env", "FW_ADMIN_TEST_PASSWORD"), "--tls-ca-file", otherCA),
			[]string{"TLS certificate not trusted", "--tls-ca-file"}},
		{"wrong server name", append(with("--sasl-password-env", "FW_ADMIN_TEST_PASSWORD"), "--tls-server-name", "kafka.plant.example"),
			[]string{"TLS certificate is for another name", "--tls-server-name"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := cmd(append([]string{"topics", "list", "--timeout", "2m"}, c.args...)...)
			check(t, out, err)
			var ue usageError
			if err == nil || errors.As(err, &ue) {
				t.Fatalf("topics list = %v, want an error of exit status 1", err)
			}
			for _, w := range append(c.want, "kafka broker "+addr) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q lacks %q", err, w)
				}
			}
		})
	}

	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"TLS flag without --tls", []string{"--tls-ca-file", caFile}, "--tls-ca-file: set while TLS is off: turn it on (--tls)"},
		{"mechanism without user", []string{"--sasl-mechanism", "PLAIN", "--sasl-password-env", "X"}, "--sasl-username: required with --sasl-mechanism PLAIN"},
		{"no password", []string{"--sasl-mechanism", "PLAIN", "--sasl-username", "u"}, "--sasl-password-env: give the password by --sasl-password-env"},
		{"unknown mechanism", []string{"--sasl-mechanism", "GSSAPI", "--sasl-username", "u", "--sasl-password-env", "X"}, `--sasl-mechanism "GSSAPI"`},
		{"password variable unset", []string{"--sasl-mechanism", "PLAIN", "--sasl-username", "u", "--sasl-password-env", "FW_ADMIN_TEST_UNSET"},
			`--sasl-password-env "FW_ADMIN_TEST_UNSET": environment variable FW_ADMIN_TEST_UNSET is not set`},
		{"the password where its variable belongs", []string{"--sasl-mechanism", "PLAIN", "--sasl-username", "u", "--sasl-password-env", adminPassword},
			"--sasl-password-env: not an environment variable name"},
		{"no password flag", []string{"--sasl-password", adminPassword}, "flag provided but not defined: -sasl-password"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := cmd(append([]string{"topics", "list", "--brokers", addr}, c.args...)...)
			check(t, out, err)
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("topics list = %v, want a usage error containing %q", err, c.want)
			}
		})
	}
}
