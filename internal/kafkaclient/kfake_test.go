package kafkaclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/factorywire/factorywire/internal/certtest"
	"github.com/factorywire/factorywire/internal/secret"
)

// password is every test user's password; the tests check it never shows.
const password = "s3cr3t-Pa55word-for-tests"

// pki is a test's certificates: ca signs the broker's (for localhost and
// 127.0.0.1, where kfake listens) and the client's; other is an unrelated
// authority.
type pki struct {
	ca, other  *certtest.CA
	server     *certtest.Pair
	client     certtest.Files
	caFile     string
	otherFile  string
	strangerCl certtest.Files // a client certificate the broker does not trust
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	p := &pki{ca: certtest.NewCA(t, "factorywire test CA"), other: certtest.NewCA(t, "another CA")}
	p.server = p.ca.Server(t, "localhost", "127.0.0.1")
	p.client = p.ca.Client(t, "gateway").Write(t, dir, "client")
	p.strangerCl = p.other.Client(t, "stranger").Write(t, dir, "stranger")
	p.caFile = p.ca.Write(t, dir)
	otherDir := t.TempDir()
	p.otherFile = p.other.Write(t, otherDir)
	return p
}

// serverTLS is the broker side: its certificate, and with mutual the
// client certificates it requires.
func (p *pki) serverTLS(mutual bool) *tls.Config {
	c := &tls.Config{Certificates: []tls.Certificate{p.server.TLS}, MinVersion: tls.VersionTLS12}
	if mutual {
		c.ClientAuth, c.ClientCAs = tls.RequireAndVerifyClientCert, p.ca.Pool()
	}
	return c
}

// startCluster runs a one-broker kfake cluster with topic "t" until the
// test ends and returns its address.
func startCluster(t *testing.T, opts ...kfake.Opt) string {
	t.Helper()
	c, err := kfake.NewCluster(append(opts, kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

func users() []kfake.Opt {
	return []kfake.Opt{
		kfake.EnableSASL(),
		kfake.Superuser(Plain, "plain-user", password),
		kfake.Superuser(ScramSHA256, "scram256-user", password),
		kfake.Superuser(ScramSHA512, "scram512-user", password),
	}
}

// passwordFile writes pw to a file, with the line break an editor leaves.
func passwordFile(t *testing.T, pw string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(path, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSecuredConnections produces a record and reads it back through each
// kind of secured listener, with the options Opts builds.
func TestSecuredConnections(t *testing.T) {
	p := newPKI(t)
	t.Setenv("FW_KAFKACLIENT_TEST_PASSWORD", password)
	cases := []struct {
		name    string
		cluster []kfake.Opt
		cfg     func(addr string) Config
	}{
		{"TLS, server certificate", []kfake.Opt{kfake.TLS(p.serverTLS(false))}, func(addr string) Config {
			return Config{Brokers: []string{addr}, TLS: TLSConfig{Enabled: true, CAFile: p.caFile}}
		}},
		{"TLS, server name given", []kfake.Opt{kfake.TLS(p.serverTLS(false))}, func(addr string) Config {
			return Config{Brokers: []string{addr}, TLS: TLSConfig{Enabled: true, CAFile: p.caFile, ServerName: "localhost"}}
		}},
		{"mutual TLS", []kfake.Opt{kfake.TLS(p.serverTLS(true))}, func(addr string) Config {
			return Config{Brokers: []string{addr}, TLS: TLSConfig{Enabled: true, CAFile: p.caFile, CertFile: p.client.Cert, KeyFile: p.client.Key}}
		}},
		{"TLS, verification off", []kfake.Opt{kfake.TLS(p.serverTLS(false))}, func(addr string) Config {
			return Config{Brokers: []string{addr}, TLS: TLSConfig{Enabled: true, InsecureSkipVerify: true}}
		}},
		{"SASL PLAIN over TLS, password from a file", append(users(), kfake.TLS(p.serverTLS(false))), func(addr string) Config {
			return Config{Brokers: []string{addr}, TLS: TLSConfig{Enabled: true, CAFile: p.caFile},
				SASL: SASLConfig{Mechanism: Plain, Username: "plain-user", PasswordFile: passwordFile(t, password)}}
		}},
		{"SASL SCRAM-SHA-256, password from the environment", users(), func(addr string) Config {
			return Config{Brokers: []string{addr}, SASL: SASLConfig{Mechanism: ScramSHA256, Username: "scram256-user", PasswordEnv: "FW_KAFKACLIENT_TEST_PASSWORD"}}
		}},
		{"SASL SCRAM-SHA-512 over mutual TLS", append(users(), kfake.TLS(p.serverTLS(true))), func(addr string) Config {
			return Config{Brokers: []string{addr}, TLS: TLSConfig{Enabled: true, CAFile: p.caFile, CertFile: p.client.Cert, KeyFile: p.client.Key},
				SASL: SASLConfig{Mechanism: ScramSHA512, Username: "scram512-user", Password: secret.New(password)}}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			addr := startCluster(t, c.cluster...)
			cfg := c.cfg(addr)
			mon := NewMonitor(cfg, nil)
			cl := newClient(t, cfg, nil, kgo.WithHooks(mon))
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte(c.name)}).FirstErr(); err != nil {
				t.Fatalf("produce: %v (monitor: %v)", err, mon.First())
			}
			cons := newClient(t, cfg, nil, kgo.ConsumeTopics("t"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			fs := cons.PollFetches(ctx)
			if err := fs.Err(); err != nil {
				t.Fatalf("consume: %v", err)
			}
			if recs := fs.Records(); len(recs) != 1 || string(recs[0].Value) != c.name {
				t.Fatalf("consumed %v", recs)
			}
			if err := mon.First(); err != nil {
				t.Fatalf("monitor reports %v", err)
			}
		})
	}
}

func newClient(t *testing.T, cfg Config, logger *slog.Logger, extra ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts, err := cfg.Opts(logger)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// TestConnectionFailures: each failure that retrying cannot fix gives one
// ConnError naming the broker, the mechanism and the cause, logged once
// however often the client retries, never holding the password.
func TestConnectionFailures(t *testing.T) {
	p := newPKI(t)
	wrong := secret.New("not-" + password)
	cases := []struct {
		name    string
		cluster []kfake.Opt
		cfg     func(addr string) Config
		cause   Cause
		want    []string // in the message, beside the broker
	}{
		{"wrong password, PLAIN", users(), func(addr string) Config {
			return Config{Brokers: []string{addr}, SASL: SASLConfig{Mechanism: Plain, Username: "plain-user", Password: wrong}}
		}, CauseAuthentication, []string{"SASL PLAIN as \"plain-user\"", "SASL authentication failed", "sasl.password_env"}},
		{"wrong password, SCRAM-SHA-256", users(), func(addr string) Config {
			return Config{Brokers: []string{addr}, SASL: SASLConfig{Mechanism: ScramSHA256, Username: "scram256-user", Password: wrong}}
		}, CauseAuthentication, []string{"SASL SCRAM-SHA-256 as \"scram256-user\"", "SASL authentication failed"}},
		{"wrong password, SCRAM-SHA-512 over TLS", append(users(), kfake.TLS(p.serverTLS(false))), func(addr string) Config {
			return Config{Brokers: []string{addr}, TLS: TLSConfig{Enabled: true, CAFile: p.caFile},
				SASL: SASLConfig{Mechanism: ScramSHA512, Username: "scram512-user", Password: wrong}}
		}, CauseAuthentication, []string{"(TLS, SASL SCRAM-SHA-512 as \"scram512-user\")", "SASL authentication failed"}},
		{"unknown user", users(), func(addr string) Config {
			return Config{Brokers: []string{addr}, SASL: SASLConfig{Mechanism: ScramSHA256, Username: "nobody", Password: secret.New(password)}}
		}, CauseAuthentication, []string{"SASL SCRAM-SHA-256 as \"nobody\"", "no SCRAM-SHA-256 user of that name"}},
		{"untrusted certificate", []kfake.Opt{kfake.TLS(p.serverTLS(false))}, func(addr string) Config {
			return Config{Brokers: []string{addr}, TLS: TLSConfig{Enabled: true, CAFile: p.otherFile}}
		}, CauseUntrusted, []string{"(TLS, no SASL)", "TLS certificate not trusted", "tls.ca_file", "x509: certificate signed by unknown authority"}},
		{"untrusted certificate, system roots", append(users(), kfake.TLS(p.serverTLS(false))), func(addr string) Config {
			return Config{Brokers: []string{addr}, TLS: TLSConfig{Enabled: true},
				SASL: SASLConfig{Mechanism: ScramSHA256, Username: "scram256-user", Password: secret.New(password)}}
		}, CauseUntrusted, []string{"(TLS, SASL SCRAM-SHA-256 as \"scram256-user\")", "TLS certificate not trusted"}},
		{"wrong server name", []kfake.Opt{kfake.TLS(p.serverTLS(false))}, func(addr string) Config {
			return Config{Brokers: []string{addr}, TLS: TLSConfig{Enabled: true, CAFile: p.caFile, ServerName: "kafka.plant.example"}}
		}, CauseServerName, []string{"TLS certificate is for another name", `holds localhost, 127.0.0.1, not "kafka.plant.example"`, "tls.server_name"}},
		{"no client certificate", []kfake.Opt{kfake.TLS(p.serverTLS(true))}, func(addr string) Config {
			return Config{Brokers: []string{addr}, TLS: TLSConfig{Enabled: true, CAFile: p.caFile}}
		}, CauseClientCertificate, []string{"TLS client certificate refused", "tls.cert_file"}},
		{"client certificate of another authority", []kfake.Opt{kfake.TLS(p.serverTLS(true))}, func(addr string) Config {
			return Config{Brokers: []string{addr}, TLS: TLSConfig{Enabled: true, CAFile: p.caFile, CertFile: p.strangerCl.Cert, KeyFile: p.strangerCl.Key}}
		}, CauseClientCertificate, []string{"TLS client certificate refused", p.strangerCl.Cert}},
		{"plaintext client, TLS listener", []kfake.Opt{kfake.TLS(p.serverTLS(false))}, func(addr string) Config {
			return Config{Brokers: []string{addr}}
		}, CauseTLSRequired, []string{"(plaintext, no SASL)", "the listener requires TLS", "tls.enabled: true"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel() // each waits for the client's second attempt, seconds apart
			addr := startCluster(t, c.cluster...)
			cfg := c.cfg(addr)
			logs := &recorder{}
			logger := logs.logger()
			mon := NewMonitor(cfg, logger)
			var failures atomic.Int64
			mon.OnFailure = func(*ConnError) { failures.Add(1) }
			cl := newClient(t, cfg, logger, kgo.WithHooks(mon))

			// The producer retries in the background: every attempt is
			// counted, the failure logged once.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cl.Produce(ctx, &kgo.Record{Topic: "t", Value: []byte("x")}, nil)
			select {
			case <-mon.Failed():
			case <-time.After(30 * time.Second):
				t.Fatalf("no connection failure reported after 30s")
			}
			waitUntil(t, "two failed attempts", func() bool { return failures.Load() >= 2 })

			err := mon.First()
			var ce *ConnError
			if !errors.As(err, &ce) {
				t.Fatalf("First() = %T %v, want a *ConnError", err, err)
			}
			if ce.Cause != c.cause {
				t.Errorf("cause %s, want %s: %v", ce.Cause, c.cause, err)
			}
			if mon.Err() == nil {
				t.Errorf("Err() = nil while the broker fails")
			}
			msg := err.Error()
			t.Log(msg)
			for _, w := range append(c.want, "kafka broker "+addr+" ") {
				if !strings.Contains(msg, w) {
					t.Errorf("message lacks %q:\n%s", w, msg)
				}
			}
			if strings.Contains(msg, password) {
				t.Errorf("message holds the password: %s", msg)
			}
			cancel()
			cl.Close()
			// One error names the cause; no warning or error repeats.
			var named int
			seen := map[string]bool{}
			for _, r := range logs.lines() {
				if strings.Contains(r, password) {
					t.Errorf("log holds the password: %s", r)
				}
				if !strings.Contains(r, " level=ERROR ") && !strings.Contains(r, " level=WARN ") {
					continue
				}
				if strings.Contains(r, "cause="+string(c.cause)) {
					named++
				}
				msg := r[strings.Index(r, " msg="):]
				if seen[msg] {
					t.Errorf("logged again after %d failed attempts: %s", failures.Load(), r)
				}
				seen[msg] = true
			}
			if named != 1 {
				t.Errorf("%d lines name cause %s, want 1:\n%s", named, c.cause, strings.Join(logs.lines(), "\n"))
			}
		})
	}
}

// TestMonitorClearsOnSuccess: a broker reached again is no longer failing.
func TestMonitorClearsOnSuccess(t *testing.T) {
	addr := startCluster(t, users()...)
	cfg := Config{Brokers: []string{addr}, SASL: SASLConfig{Mechanism: ScramSHA256, Username: "scram256-user", Password: secret.New("wrong")}}
	mon := NewMonitor(cfg, nil)
	bad := newClient(t, cfg, nil, kgo.WithHooks(mon))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bad.Ping(ctx)
	bad.Ping(ctx)
	if mon.Err() == nil {
		t.Fatal("no failure after two refused attempts")
	}
	// Another client with the right password, reporting to the same
	// monitor (as a restarted component's would, to its own).
	cfg.SASL.Password = secret.New(password)
	good := newClient(t, cfg, nil, kgo.WithHooks(mon))
	if err := good.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if err := mon.Err(); err != nil {
		t.Fatalf("Err() = %v after a successful connection", err)
	}
	if mon.First() == nil {
		t.Fatal("First() forgot the failure")
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// recorder is a text log kept in memory, safe for concurrent writes.
type recorder struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.Write(p)
}

// logger logs every record, debug level and above, to r.
func (r *recorder) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(r, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// lines are the records logged.
func (r *recorder) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Split(strings.TrimSpace(r.buf.String()), "\n")
}
