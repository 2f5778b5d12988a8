package kafkaclient

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/factorywire/factorywire/internal/certtest"
	"github.com/factorywire/factorywire/internal/configfile"
	"github.com/factorywire/factorywire/internal/secret"
)

func TestValidate(t *testing.T) {
	base := func() Config { return Config{Brokers: []string{"kafka:9093"}} }
	cases := []struct {
		name string
		edit func(*Config)
		want string // substring of the error; empty = valid
	}{
		{"plaintext", func(*Config) {}, ""},
		{"TLS with everything", func(c *Config) {
			c.TLS = TLSConfig{Enabled: true, CAFile: "ca.pem", CertFile: "c.crt", KeyFile: "c.key", ServerName: "kafka"}
		}, ""},
		{"SCRAM from a file", func(c *Config) {
			c.SASL = SASLConfig{Mechanism: ScramSHA512, Username: "u", PasswordFile: "/run/secrets/pw"}
		}, ""},
		{"PLAIN from the environment", func(c *Config) {
			c.SASL = SASLConfig{Mechanism: Plain, Username: "u", PasswordEnv: "KAFKA_PASSWORD"}
		}, ""},
		{"password given by a program", func(c *Config) {
			c.SASL = SASLConfig{Mechanism: ScramSHA256, Username: "u", Password: secret.New("pw")}
		}, ""},
		{"no brokers", func(c *Config) { c.Brokers = nil }, "brokers: at least one broker required"},
		{"empty broker", func(c *Config) { c.Brokers = []string{"a:1", ""} }, "brokers[1]: empty"},
		{"two brokers in one item", func(c *Config) { c.Brokers = []string{"a:1,b:2"} }, `brokers[0] "a:1,b:2": want host:port, without a scheme`},
		{"scheme", func(c *Config) { c.Brokers = []string{"SASL_SSL://a:9093"} }, `brokers[0] "SASL_SSL://a:9093": want host:port, without a scheme`},
		{"tls key without enabled", func(c *Config) { c.TLS.CAFile = "ca.pem" }, "tls.ca_file: set while TLS is off"},
		{"insecure without enabled", func(c *Config) { c.TLS.InsecureSkipVerify = true }, "tls.insecure_skip_verify: set while TLS is off"},
		{"cert without key", func(c *Config) { c.TLS = TLSConfig{Enabled: true, CertFile: "c.crt"} }, `tls.key_file: required with tls.cert_file "c.crt"`},
		{"key without cert", func(c *Config) { c.TLS = TLSConfig{Enabled: true, KeyFile: "c.key"} }, `tls.cert_file: required with tls.key_file "c.key"`},
		{"insecure and a CA", func(c *Config) { c.TLS = TLSConfig{Enabled: true, CAFile: "ca.pem", InsecureSkipVerify: true} }, `tls.ca_file "ca.pem": unused with tls.insecure_skip_verify`},
		{"unknown mechanism", func(c *Config) { c.SASL = SASLConfig{Mechanism: "scram-sha-256", Username: "u", PasswordEnv: "P"} }, `sasl.mechanism "scram-sha-256": want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512`},
		{"GSSAPI", func(c *Config) { c.SASL = SASLConfig{Mechanism: "GSSAPI", Username: "u", PasswordEnv: "P"} }, `sasl.mechanism "GSSAPI"`},
		{"user without mechanism", func(c *Config) { c.SASL.Username = "u" }, "sasl.mechanism: required with sasl.username"},
		{"mechanism without user", func(c *Config) { c.SASL = SASLConfig{Mechanism: Plain, PasswordEnv: "P"} }, "sasl.username: required with sasl.mechanism PLAIN"},
		{"no password", func(c *Config) { c.SASL = SASLConfig{Mechanism: Plain, Username: "u"} }, "sasl.password_env: give the password by sasl.password_env"},
		{"two passwords", func(c *Config) {
			c.SASL = SASLConfig{Mechanism: Plain, Username: "u", PasswordEnv: "P", PasswordFile: "f"}
		}, "give one of sasl.password_env and sasl.password_file"},
		{"password in password_env", func(c *Config) {
			c.SASL = SASLConfig{Mechanism: Plain, Username: "u", PasswordEnv: "hunter2!"}
		}, "sasl.password_env: not an environment variable name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := base()
			c.edit(&cfg)
			err := cfg.Validate()
			if c.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to contain %q", err, c.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error quotes what may be a password: %v", err)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %T holds no FieldError", err)
			}
		})
	}
}

func TestRekey(t *testing.T) {
	err := Config{SASL: SASLConfig{Mechanism: "X"}}.Validate()
	got := Rekey(err, func(k string) string { return "kafka." + k }).Error()
	for _, want := range []string{"kafka.brokers: at least one", `kafka.sasl.mechanism "X"`} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
	if Rekey(nil, strings.ToUpper) != nil {
		t.Error("Rekey(nil) != nil")
	}
	plain := errors.New("other")
	if got := Rekey(plain, strings.ToUpper); got.Error() != "other" {
		t.Errorf("Rekey changed a plain error: %v", got)
	}
}

// TestOpts: Opts reads the files and the password, and its errors name
// the key and the file or variable, never the password.
func TestOpts(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "ca")
	caFile := ca.Write(t, dir)
	client := ca.Client(t, "c").Write(t, dir, "client")
	other := ca.Client(t, "o").Write(t, dir, "other")
	notPEM := filepath.Join(dir, "not.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o600)
	pwFile := filepath.Join(dir, "pw")
	os.WriteFile(pwFile, []byte(password+"\n"), 0o600)
	t.Setenv("FW_OPTS_PW", password)
	tlsOn := func(t TLSConfig) TLSConfig { t.Enabled = true; return t }
	cases := []struct {
		name string
		cfg  Config
		want string // substring of the error; empty = success
		warn string // substring of a warning logged
	}{
		{"plaintext", Config{}, "", ""},
		{"CA bundle", Config{TLS: tlsOn(TLSConfig{CAFile: caFile})}, "", ""},
		{"mutual TLS", Config{TLS: tlsOn(TLSConfig{CAFile: caFile, CertFile: client.Cert, KeyFile: client.Key})}, "", ""},
		{"missing CA", Config{TLS: tlsOn(TLSConfig{CAFile: filepath.Join(dir, "nope.pem")})}, `tls.ca_file "` + filepath.Join(dir, "nope.pem") + `": no such file`, ""},
		{"CA not PEM", Config{TLS: tlsOn(TLSConfig{CAFile: notPEM})}, "holds no PEM certificate", ""},
		{"missing cert", Config{TLS: tlsOn(TLSConfig{CertFile: filepath.Join(dir, "x.crt"), KeyFile: client.Key})}, `tls.cert_file "` + filepath.Join(dir, "x.crt") + `": no such file`, ""},
		{"missing key", Config{TLS: tlsOn(TLSConfig{CertFile: client.Cert, KeyFile: filepath.Join(dir, "x.key")})}, `tls.key_file "` + filepath.Join(dir, "x.key") + `": no such file`, ""},
		{"key of another certificate", Config{TLS: tlsOn(TLSConfig{CertFile: client.Cert, KeyFile: other.Key})}, "private key does not match public key", ""},
		{"insecure warns", Config{TLS: tlsOn(TLSConfig{InsecureSkipVerify: true})}, "", "tls.insecure_skip_verify is set"},
		{"password file", Config{SASL: SASLConfig{Mechanism: ScramSHA256, Username: "u", PasswordFile: pwFile}}, "", ""},
		{"password env", Config{SASL: SASLConfig{Mechanism: ScramSHA512, Username: "u", PasswordEnv: "FW_OPTS_PW"}}, "", ""},
		{"PLAIN without TLS warns", Config{SASL: SASLConfig{Mechanism: Plain, Username: "u", PasswordEnv: "FW_OPTS_PW"}}, "", "PLAIN without TLS sends the password in clear"},
		{"password env unset", Config{SASL: SASLConfig{Mechanism: Plain, Username: "u", PasswordEnv: "FW_OPTS_UNSET"}},
			`sasl.password_env "FW_OPTS_UNSET": environment variable FW_OPTS_UNSET is not set`, ""},
		{"password file missing", Config{SASL: SASLConfig{Mechanism: Plain, Username: "u", PasswordFile: filepath.Join(dir, "nope")}},
			`sasl.password_file "` + filepath.Join(dir, "nope") + `": read secret file`, ""},
		{"invalid", Config{SASL: SASLConfig{Mechanism: "NOPE"}}, `sasl.mechanism "NOPE"`, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var logs bytes.Buffer
			c.cfg.Brokers = []string{"127.0.0.1:9092"}
			opts, err := c.cfg.Opts(slog.New(slog.NewTextHandler(&logs, nil)))
			if c.want == "" {
				if err != nil || len(opts) < 2 {
					t.Fatalf("Opts: %d options, %v", len(opts), err)
				}
			} else if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to contain %q", err, c.want)
			}
			if c.warn != "" && !strings.Contains(logs.String(), c.warn) {
				t.Errorf("log %q lacks %q", logs.String(), c.warn)
			}
			if c.warn == "" && logs.Len() > 0 {
				t.Errorf("unexpected log: %s", logs.String())
			}
			if strings.Contains(logs.String(), password) || err != nil && strings.Contains(err.Error(), password) {
				t.Errorf("the password shows: %v %s", err, logs.String())
			}
		})
	}
}

// TestYAML: the block decodes strictly from the keys documented, a
// password key is refused, and marshalling never writes the password.
func TestYAML(t *testing.T) {
	const doc = `
brokers: [a:9093, b:9093]
tls:
  enabled: true
  ca_file: /etc/ca.pem
  cert_file: /etc/c.crt
  key_file: /etc/c.key
  server_name: kafka.example
  insecure_skip_verify: false
sasl:
  mechanism: SCRAM-SHA-512
  username: gw
  password_file: /run/secrets/kafka
`
	var c Config
	if err := configfile.Decode("k.yaml", []byte(doc), &c); err != nil {
		t.Fatal(err)
	}
	want := Config{Brokers: []string{"a:9093", "b:9093"},
		TLS:  TLSConfig{Enabled: true, CAFile: "/etc/ca.pem", CertFile: "/etc/c.crt", KeyFile: "/etc/c.key", ServerName: "kafka.example"},
		SASL: SASLConfig{Mechanism: ScramSHA512, Username: "gw", PasswordFile: "/run/secrets/kafka"}}
	if fmt.Sprint(c) != fmt.Sprint(want) {
		t.Fatalf("decoded %+v, want %+v", c, want)
	}
	if err := configfile.Decode("k.yaml", []byte("sasl:\n  password: hunter2\n"), &c); err == nil || !strings.Contains(err.Error(), `k.yaml:2: unknown key "password"`) {
		t.Fatalf("a password key: %v", err)
	}
	c.SASL.Password = secret.New(password)
	out, err := yaml.Marshal(c)
	if err != nil || strings.Contains(string(out), password) || strings.Contains(fmt.Sprintf("%+v %#v", c, c), password) {
		t.Fatalf("the password shows: %s %v", out, err)
	}
	if d := c.Describe(); strings.Contains(d, password) || !strings.Contains(d, "SASL SCRAM-SHA-512 as \"gw\"") {
		t.Fatalf("Describe: %s", d)
	}
}

func TestRelativeTo(t *testing.T) {
	c := Config{TLS: TLSConfig{CAFile: "ca.pem", CertFile: "/abs/c.crt", KeyFile: "keys/c.key"}, SASL: SASLConfig{PasswordFile: "pw"}}
	c.RelativeTo("/etc/factorywire")
	want := Config{TLS: TLSConfig{CAFile: "/etc/factorywire/ca.pem", CertFile: "/abs/c.crt", KeyFile: "/etc/factorywire/keys/c.key"},
		SASL: SASLConfig{PasswordFile: "/etc/factorywire/pw"}}
	if fmt.Sprint(c) != fmt.Sprint(want) {
		t.Fatalf("got %+v, want %+v", c, want)
	}
	var empty Config
	empty.RelativeTo("/x")
	if empty.TLS.CAFile != "" || empty.SASL.PasswordFile != "" {
		t.Fatalf("an unset path became %+v", empty)
	}
}
