package gateway

import (
	"bytes"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/factorywire/factorywire/devices/modbus"
	"github.com/factorywire/factorywire/internal/certtest"
	"github.com/factorywire/factorywire/internal/kafkaclient"
	"github.com/factorywire/factorywire/internal/kafkatest"
)

// gwPassword is the SASL password of the secured tests; it must never show
// in a log, a metric or /readyz.
const gwPassword = "gw-Pa55-never-printed"

// refusal is a kafka block the cluster refuses, and what the gateway must
// say about it.
type refusal struct {
	name   string
	broken func(t *testing.T, k *KafkaConfig, pwFile string) // breaks a working block
	cause  kafkaclient.Cause
	want   string // in /readyz
}

var wrongPassword = refusal{"wrong password", func(t *testing.T, _ *KafkaConfig, pwFile string) { writeFile(t, pwFile, "wrong-"+gwPassword+"\n") },
	kafkaclient.CauseAuthentication, `SASL SCRAM-SHA-512 as "gateway"): SASL authentication failed`}

// TestGatewaySecuredKafka: a gateway whose kafka block is wrong for the
// cluster (a wrong password, a CA that did not sign the broker's
// certificate) keeps polling into the spool, logs the failure once, counts
// it, and answers /readyz 503 naming the cause; restarted with the right
// block over the same data dir, it forwards everything, each device's seq
// without a gap, over SASL_SSL (kfake).
func TestGatewaySecuredKafka(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "plant CA")
	caFile := ca.Write(t, dir)
	otherCA := certtest.NewCA(t, "another CA").Write(t, t.TempDir())
	srv := ca.Server(t, "localhost", "127.0.0.1")
	for _, r := range []refusal{
		wrongPassword,
		{"untrusted certificate", func(_ *testing.T, k *KafkaConfig, _ string) { k.TLS.CAFile = otherCA },
			kafkaclient.CauseUntrusted, "TLS certificate not trusted"},
	} {
		t.Run(r.name, func(t *testing.T) {
			plant := newTestPlant(t, "", 100*time.Millisecond, 2)
			var topics []string
			for topic := range plant.topics {
				topics = append(topics, topic)
			}
			cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topics...),
				kfake.TLS(&tls.Config{Certificates: []tls.Certificate{srv.TLS}}),
				kfake.EnableSASL(), kfake.Superuser(kafkaclient.ScramSHA512, "gateway", gwPassword))
			if err != nil {
				t.Fatal(err)
			}
			defer cluster.Close()
			refusedThenFixed(t, plant, cluster.ListenAddrs()[0], caFile, r)
		})
	}
}

// TestGatewaySecuredApacheKafka is TestGatewaySecuredKafka's wrong
// password against Apache Kafka 4.1.1's SASL_SSL listener, which answers
// SASL_AUTHENTICATION_FAILED (and fails the records kgo holds) where kfake
// closes the connection. Skips without java and the jars.
func TestGatewaySecuredApacheKafka(t *testing.T) {
	c, caFile := kafkatest.StartSCRAM(t, "gateway", gwPassword)
	plant := newTestPlant(t, "", 100*time.Millisecond, 2)
	createTopics(t, c.Brokers()[0], plant.topics)
	refusedThenFixed(t, plant, c.ListenerAddrs("SECURE")[0], caFile, wrongPassword)
}

// refusedThenFixed runs plant's gateway with a block for the cluster at
// addr (TLS with caFile, SCRAM-SHA-512 as "gateway" with gwPassword from a
// file) that r breaks, checks what it reports while refused, then runs it
// with the working block and checks that every sample polled arrives.
func refusedThenFixed(t *testing.T, plant *testPlant, addr, caFile string, r refusal) {
	t.Helper()
	pwFile := filepath.Join(t.TempDir(), "kafka-password")
	writeFile(t, pwFile, gwPassword+"\n")
	good := plant.cfg
	good.Kafka.Brokers = []string{addr}
	good.Kafka.TLS = kafkaclient.TLSConfig{Enabled: true, CAFile: caFile}
	good.Kafka.SASL = kafkaclient.SASLConfig{Mechanism: kafkaclient.ScramSHA512, Username: "gateway", PasswordFile: pwFile}
	bad := good
	r.broken(t, &bad.Kafka, pwFile)

	var logs lockedBuffer
	g, stopBad := runGatewayLogged(t, bad, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	counted := regexp.MustCompile(`factorywire_gateway_kafka_connection_errors_total\{cause="` + string(r.cause) + `"\} (\d+)`)
	waitFor(t, "two failed connection attempts counted", 60*time.Second, func() bool {
		m := counted.FindStringSubmatch(scrape(t, g))
		if m == nil {
			return false
		}
		n, _ := strconv.Atoi(m[1])
		return n >= 2
	})
	waitFor(t, "20 samples spooled", 20*time.Second, func() bool { return g.spool.backlog(false) >= 20 })
	status, body := get(t, "http://"+g.Addr().String()+"/readyz")
	if status != http.StatusServiceUnavailable || !strings.Contains(body, r.want) || !strings.Contains(body, "kafka broker "+addr) {
		t.Errorf("/readyz: %d %q, want 503 naming the broker and %q", status, body, r.want)
	}
	metrics := scrape(t, g)
	stopBad()

	log := logs.String()
	if n := strings.Count(log, "cause="+string(r.cause)); n != 1 {
		t.Errorf("the cause is logged %d times, want once:\n%s", n, log)
	}
	for what, text := range map[string]string{"log": log, "/metrics": metrics, "/readyz": body} {
		if strings.Contains(text, gwPassword) {
			t.Errorf("the password shows in %s", what)
		}
	}

	// Restarted with the right credentials and CA, the gateway forwards
	// what the spool holds and what it polls next.
	writeFile(t, pwFile, gwPassword+"\n")
	g2, stop := runGateway(t, good)
	waitFor(t, "the backlog to drain", 60*time.Second, func() bool { return g2.spool.backlog(true) == 0 })
	if status, body := get(t, "http://"+g2.Addr().String()+"/readyz"); status != http.StatusOK {
		t.Errorf("/readyz after the fix: %d %s", status, body)
	}
	stop()
	last, total := polled(g2)
	opts, err := good.Kafka.Opts(nil)
	if err != nil {
		t.Fatal(err)
	}
	checkSeqs(t, plant.delivered(t, addr, total, opts...), plant.devices, last, true)
}

// TestCheckHidesThePassword: the gateway's check and its start-up log
// describe the secured connection without the password.
func TestCheckHidesThePassword(t *testing.T) {
	t.Setenv("FW_GATEWAY_TEST_PASSWORD", gwPassword)
	cfg := DefaultConfig()
	cfg.Factory, cfg.DataDir, cfg.ClassesDir, cfg.HTTPListen = "plant-a", t.TempDir(), "../configs/devices", ""
	cfg.Connections = []modbus.ConnConfig{testConn("l1")}
	cfg.Devices = []DeviceConfig{{ID: "d1", Class: "press", Connection: "l1", Schedule: everySecond}}
	cfg.Kafka.SASL = kafkaclient.SASLConfig{Mechanism: kafkaclient.Plain, Username: "gw", PasswordEnv: "FW_GATEWAY_TEST_PASSWORD"}
	if _, err := Check(cfg); err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	_, stop := runGatewayLogged(t, cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	waitFor(t, "the start-up log", 10*time.Second, func() bool { return strings.Contains(logs.String(), "gateway running") })
	stop()
	if !strings.Contains(logs.String(), `SASL PLAIN as \"gw\", password from $FW_GATEWAY_TEST_PASSWORD`) {
		t.Errorf("start-up log does not describe the connection:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), gwPassword) {
		t.Errorf("the password shows in the log:\n%s", logs.String())
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// lockedBuffer is a log destination safe for concurrent writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// logger is a text logger at level into b.
func (b *lockedBuffer) logger(level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: level}))
}
