package sink

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/factorywire/factorywire/internal/certtest"
	"github.com/factorywire/factorywire/internal/kafkaclient"
	"github.com/factorywire/factorywire/internal/kafkatest"
	"github.com/factorywire/factorywire/internal/mongotest"
	"github.com/factorywire/factorywire/internal/secret"
)

// sinkPassword is the SASL password of the secured tests.
const sinkPassword = "sink-Pa55-never-printed"

// TestSinkSecuredKafka: over SASL_SSL (SCRAM-SHA-256) the sink consumes and
// stores what was produced; with a wrong password, an unknown user, an
// untrusted CA or a certificate for another name, Run stops with a
// kafkaclient.ConnError naming the broker, the mechanism and the cause,
// instead of retrying for ever.
func TestSinkSecuredKafka(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "plant CA")
	caFile := ca.Write(t, dir)
	otherCA := certtest.NewCA(t, "another CA").Write(t, t.TempDir())
	srv := ca.Server(t, "localhost", "127.0.0.1")
	press := testFactory + ".press"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, press, press+".dlq"),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{srv.TLS}}),
		kfake.EnableSASL(), kfake.Superuser(kafkaclient.ScramSHA256, "sink", sinkPassword))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	addr := cluster.ListenAddrs()[0]
	good := kafkaclient.Config{Brokers: []string{addr}, TLS: kafkaclient.TLSConfig{Enabled: true, CAFile: caFile},
		SASL: kafkaclient.SASLConfig{Mechanism: kafkaclient.ScramSHA256, Username: "sink", Password: secret.New(sinkPassword)}}
	mongoURI := mongotest.Start(t)

	t.Run("stores what was produced", func(t *testing.T) {
		opts, err := good.Opts(nil)
		if err != nil {
			t.Fatal(err)
		}
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		if err := cl.ProduceSync(ctx, stream([]string{"press"}, 3, 0, 20)...).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
		cfg := testConfig(addr, mongoURI)
		cfg.Kafka.Config = good
		d := openDB(t, cfg)
		r := startSink(t, cfg)
		waitFor(t, "every sample stored", func() bool { return d.total(press) >= 60 })
		r.close(t)
		checkExactlyOnce(t, d.seqs(t, press), map[string][2]uint64{"press-00": {0, 20}, "press-01": {0, 20}, "press-02": {0, 20}})
	})

	for _, c := range []struct {
		name  string
		edit  func(*kafkaclient.Config)
		cause kafkaclient.Cause
		want  string
	}{
		{"wrong password", func(k *kafkaclient.Config) { k.SASL.Password = secret.New("wrong-" + sinkPassword) },
			kafkaclient.CauseAuthentication, `(TLS, SASL SCRAM-SHA-256 as "sink"): SASL authentication failed`},
		{"unknown user", func(k *kafkaclient.Config) { k.SASL.Username = "nobody" },
			kafkaclient.CauseAuthentication, `SASL SCRAM-SHA-256 as "nobody"): SASL authentication failed`},
		{"untrusted certificate", func(k *kafkaclient.Config) { k.TLS.CAFile = otherCA },
			kafkaclient.CauseUntrusted, "TLS certificate not trusted"},
		{"wrong server name", func(k *kafkaclient.Config) { k.TLS.ServerName = "kafka.plant.example" },
			kafkaclient.CauseServerName, `not "kafka.plant.example"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig(addr, mongoURI)
			cfg.Kafka.Config = good
			c.edit(&cfg.Kafka.Config)
			err := runUntilStopped(t, cfg)
			var ce *kafkaclient.ConnError
			if !errors.As(err, &ce) || ce.Cause != c.cause {
				t.Fatalf("Run = %v, want a ConnError of cause %s", err, c.cause)
			}
			for _, want := range []string{"kafka broker " + addr, c.want} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%q lacks %q", err, want)
				}
			}
			if strings.Contains(err.Error(), sinkPassword) {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

// TestSinkSecuredApacheKafka: against Apache Kafka 4.1.1's SASL_SSL
// listener (SCRAM-SHA-512) the sink consumes and stores; with a wrong
// password Run stops with the ConnError Kafka's SASL_AUTHENTICATION_FAILED
// gives. Skips without java and the jars.
func TestSinkSecuredApacheKafka(t *testing.T) {
	c, caFile := kafkatest.StartSCRAM(t, "sink", sinkPassword)
	press := testFactory + ".press"
	createTopics(t, c.Brokers()[0], map[string]int32{press: 2, press + ".dlq": 1})
	admin, err := kgo.NewClient(kgo.SeedBrokers(c.Brokers()...))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := admin.ProduceSync(ctx, stream([]string{"press"}, 3, 0, 20)...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	good := kafkaclient.Config{Brokers: c.ListenerAddrs("SECURE"), TLS: kafkaclient.TLSConfig{Enabled: true, CAFile: caFile},
		SASL: kafkaclient.SASLConfig{Mechanism: kafkaclient.ScramSHA512, Username: "sink", Password: secret.New(sinkPassword)}}
	mongoURI := mongotest.Start(t)

	t.Run("wrong password", func(t *testing.T) {
		cfg := testConfig(c.Brokers()[0], mongoURI)
		cfg.Kafka.Config = good
		cfg.Kafka.SASL.Password = secret.New("wrong-" + sinkPassword)
		err := runUntilStopped(t, cfg)
		var ce *kafkaclient.ConnError
		if !errors.As(err, &ce) || ce.Cause != kafkaclient.CauseAuthentication || !strings.Contains(err.Error(), "SASL_AUTHENTICATION_FAILED") {
			t.Fatalf("Run = %v, want Kafka's SASL_AUTHENTICATION_FAILED as a ConnError", err)
		}
		if strings.Contains(err.Error(), sinkPassword) {
			t.Errorf("the error shows the password: %v", err)
		}
	})
	t.Run("stores what was produced", func(t *testing.T) {
		cfg := testConfig(c.Brokers()[0], mongoURI)
		cfg.Kafka.Config = good
		d := openDB(t, cfg)
		r := startSink(t, cfg)
		waitFor(t, "every sample stored", func() bool { return d.total(press) >= 60 })
		r.close(t)
		checkExactlyOnce(t, d.seqs(t, press), map[string][2]uint64{"press-00": {0, 20}, "press-01": {0, 20}, "press-02": {0, 20}})
	})
}

// runUntilStopped runs a sink for cfg and returns the error it stops with;
// it fails the test if the sink still runs after waitLimit.
func runUntilStopped(t *testing.T, cfg Config) error {
	t.Helper()
	s, err := New(cfg, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background()) }()
	select {
	case err = <-done:
	case <-time.After(waitLimit):
		t.Fatalf("the sink still runs after %v", waitLimit)
	}
	return err
}
