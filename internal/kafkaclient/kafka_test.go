package kafkaclient

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/factorywire/factorywire/internal/certtest"
	"github.com/factorywire/factorywire/internal/kafkatest"
	"github.com/factorywire/factorywire/internal/secret"
)

// TestApacheKafka repeats the kfake checks against Apache Kafka 4.1.1: a
// SASL_SSL listener (PLAIN from the JAAS config, SCRAM users created with
// AlterUserSCRAMs on the PLAINTEXT listener) and an SSL listener requiring
// client certificates, with certificates of certtest in PEM files. Apache
// Kafka answers a refused password with SASL_AUTHENTICATION_FAILED where
// kfake closes the connection. Skips without java and the jars (see
// internal/kafkatest).
func TestApacheKafka(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "kafka CA")
	caFile := ca.Write(t, dir)
	otherCA := certtest.NewCA(t, "another CA").Write(t, t.TempDir())
	srv := ca.Server(t, "localhost", "127.0.0.1").Write(t, dir, "broker")
	client := ca.Client(t, "factorywire").Write(t, dir, "client")
	const scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
	c := kafkatest.Start(t, kafkatest.Options{
		Listeners: map[string]string{"SECURE": "SASL_SSL", "MTLS": "SSL"},
		Props: map[string]string{
			"listener.name.secure.ssl.keystore.type":              "PEM",
			"listener.name.secure.ssl.keystore.location":          srv.Chain,
			"listener.name.secure.sasl.enabled.mechanisms":        "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
			"listener.name.secure.plain.sasl.jaas.config":         `org.apache.kafka.common.security.plain.PlainLoginModule required user_plainuser="` + password + `";`,
			"listener.name.secure.scram-sha-256.sasl.jaas.config": scram,
			"listener.name.secure.scram-sha-512.sasl.jaas.config": scram,
			"listener.name.mtls.ssl.keystore.type":                "PEM",
			"listener.name.mtls.ssl.keystore.location":            srv.Chain,
			"listener.name.mtls.ssl.truststore.type":              "PEM",
			"listener.name.mtls.ssl.truststore.location":          caFile,
			"listener.name.mtls.ssl.client.auth":                  "required",
		},
	})
	secure, mtls, plaintext := c.ListenerAddrs("SECURE")[0], c.ListenerAddrs("MTLS")[0], c.Brokers()[0]

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	admin, err := kgo.NewClient(kgo.SeedBrokers(plaintext))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	adm := kadm.NewClient(admin)
	altered, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{
		{User: "scram256", Mechanism: kadm.ScramSha256, Iterations: 4096, Password: password},
		{User: "scram512", Mechanism: kadm.ScramSha512, Iterations: 4096, Password: password},
	})
	if err == nil {
		err = altered.Error()
	}
	if err != nil {
		t.Fatalf("create SCRAM users: %v", err)
	}
	if r, err := adm.CreateTopic(ctx, 1, 1, nil, "secured"); err != nil || r.Err != nil {
		t.Fatalf("create topic: %v %v", err, r.Err)
	}

	sasl := func(mech, user string, pw secret.Secret) Config {
		return Config{Brokers: []string{secure}, TLS: TLSConfig{Enabled: true, CAFile: caFile},
			SASL: SASLConfig{Mechanism: mech, Username: user, Password: pw}}
	}
	right := secret.New(password)
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"SASL_SSL PLAIN", sasl(Plain, "plainuser", right)},
		{"SASL_SSL SCRAM-SHA-256", sasl(ScramSHA256, "scram256", right)},
		{"SASL_SSL SCRAM-SHA-512", sasl(ScramSHA512, "scram512", right)},
		{"mutual TLS", Config{Brokers: []string{mtls}, TLS: TLSConfig{Enabled: true, CAFile: caFile, CertFile: client.Cert, KeyFile: client.Key}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mon := NewMonitor(tc.cfg, nil)
			cl := newClient(t, tc.cfg, nil, kgo.WithHooks(mon), kgo.ConsumeTopics("secured"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			// A SCRAM user reaches the broker through the metadata log a
			// moment after AlterUserSCRAMs returns: wait for it.
			for {
				pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
				err := cl.Ping(pctx)
				pcancel()
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("ping: %v (monitor: %v)", err, mon.First())
				}
				time.Sleep(200 * time.Millisecond)
			}
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "secured", Value: []byte(tc.name)}).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
			found := false
			for !found {
				fs := cl.PollFetches(ctx)
				if err := fs.Err0(); err != nil {
					t.Fatalf("consume: %v", err)
				}
				fs.EachRecord(func(r *kgo.Record) { found = found || string(r.Value) == tc.name })
			}
		})
	}

	wrong := secret.New("not-" + password)
	for _, tc := range []struct {
		name  string
		cfg   Config
		cause Cause
		want  []string
	}{
		{"wrong password, SCRAM-SHA-256", sasl(ScramSHA256, "scram256", wrong), CauseAuthentication,
			[]string{`(TLS, SASL SCRAM-SHA-256 as "scram256")`, "invalid credentials"}},
		{"wrong password, PLAIN", sasl(Plain, "plainuser", wrong), CauseAuthentication, []string{`SASL PLAIN as "plainuser"`}},
		{"unknown user, SCRAM-SHA-512", sasl(ScramSHA512, "nobody", right), CauseAuthentication, []string{`SASL SCRAM-SHA-512 as "nobody"`}},
		{"SCRAM-SHA-256 user with SHA-512", sasl(ScramSHA512, "scram256", right), CauseAuthentication, []string{"no SCRAM-SHA-512 user of that name"}},
		{"untrusted certificate", Config{Brokers: []string{secure}, TLS: TLSConfig{Enabled: true, CAFile: otherCA},
			SASL: SASLConfig{Mechanism: ScramSHA256, Username: "scram256", Password: right}}, CauseUntrusted, []string{"tls.ca_file"}},
		{"wrong server name", Config{Brokers: []string{secure}, TLS: TLSConfig{Enabled: true, CAFile: caFile, ServerName: "kafka.plant.example"},
			SASL: SASLConfig{Mechanism: ScramSHA256, Username: "scram256", Password: right}}, CauseServerName, []string{`not "kafka.plant.example"`}},
		{"no client certificate", Config{Brokers: []string{mtls}, TLS: TLSConfig{Enabled: true, CAFile: caFile}}, CauseClientCertificate, []string{"tls.cert_file"}},
		{"plaintext client, TLS listener", Config{Brokers: []string{mtls}}, CauseTLSRequired, []string{"tls.enabled: true"}},
		{"TLS client, plaintext listener", Config{Brokers: []string{plaintext}, TLS: TLSConfig{Enabled: true, CAFile: caFile}}, CauseNotTLS, []string{"tls.enabled: false"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mon := NewMonitor(tc.cfg, nil)
			cl := newClient(t, tc.cfg, nil, kgo.WithHooks(mon))
			pctx, pcancel := context.WithCancel(ctx)
			defer pcancel()
			go func() {
				for pctx.Err() == nil { // kgo gives up a ping; the monitor needs attempts
					cl.Ping(pctx)
					time.Sleep(50 * time.Millisecond)
				}
			}()
			select {
			case <-mon.Failed():
			case <-ctx.Done():
				t.Fatal("no connection failure reported")
			}
			err := mon.First()
			var ce *ConnError
			if !errors.As(err, &ce) || ce.Cause != tc.cause {
				t.Fatalf("First() = %v, want cause %s", err, tc.cause)
			}
			t.Log(err)
			for _, w := range append(tc.want, "kafka broker "+tc.cfg.Brokers[0]+" ") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("message lacks %q: %v", w, err)
				}
			}
			if strings.Contains(err.Error(), password) {
				t.Errorf("message holds the password: %v", err)
			}
		})
	}
}
