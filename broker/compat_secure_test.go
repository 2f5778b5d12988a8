package broker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/xdg-go/scram"

	"github.com/factorywire/factorywire/internal/certtest"
	"github.com/factorywire/factorywire/internal/kafkatest"
	"github.com/factorywire/factorywire/internal/peers"
)

// The security compatibility tests run each third-party client against the
// listeners of startSecureBroker: on SASL_SSL, trusting only the test CA,
// it authenticates as gateway-plant-a with PLAIN, SCRAM-SHA-256 and
// SCRAM-SHA-512, produces a few records and reads them back (and franz-go
// reads them over PLAINTEXT); with a wrong password it fails with its own
// authentication error, nothing is stored, and the broker counts the
// failure; on MTLS it connects with a client certificate, whose subject
// the broker maps to the principal. No password shows in the broker's log.
// franz-go is covered by TestSASLMechanisms (sasl_test.go).

// secureMechanisms are the SASL mechanisms every client is tested with.
var secureMechanisms = []string{mechPlain, mechScramSHA256, mechScramSHA512}

// secureRecords is how many records each client produces per case.
const secureRecords = 5

// secureValue is the value of record i a client produces, keyed
// "dev-<i mod 10>" (as testdata/kafkajs/produce.js writes them).
func secureValue(i int) string { return "v-" + strconv.Itoa(i) }

// mtlsUser is the common name of the client certificate on the MTLS
// listener, and the principal User:<name> the broker maps it to: a name
// no SASL case uses, so the broker's log tells which connections it was.
const mtlsUser = "plant-a-mtls"

// secureCreds is how a client connects: the listener's address, the CA
// file it trusts, and either SASL credentials or a client certificate.
type secureCreds struct {
	addr     string
	caFile   string
	caTLS    *tls.Config // trusts the CA, for in-process clients
	mech     string      // SASL mechanism; "" on MTLS
	user     string
	password string
	cert     *certtest.Pair // MTLS: the client certificate
	files    certtest.Files // MTLS: the same, as PEM files
}

// secureClient adapts one client to runSecureCompat.
type secureClient struct {
	// produce writes records 0…n-1 (secureValue) to topic, partition 0,
	// with acks=all. An error means they were not all acknowledged; its
	// text holds what the client reported.
	produce func(t *testing.T, c secureCreds, topic string, n int) error
	// consume reads n records of topic from its start and returns their
	// values in offset order.
	consume func(t *testing.T, c secureCreds, topic string, n int) []string
	// authFailed reports whether a produce error is the client's report
	// that the broker refused its credentials for mech.
	authFailed func(err error, mech string) bool
	// mtls is whether the client is tested on the MTLS listener too.
	mtls bool
	// scramBroken, if not empty, says why the client cannot authenticate
	// with SCRAM: then a SCRAM case asserts the refusal (documented in
	// docs/COMPATIBILITY.md) and fails once the client succeeds.
	scramBroken string
}

// saslCreds returns the credentials of user for the SASL_SSL listener.
func (sb *secureBroker) saslCreds(mech, user, password string) secureCreds {
	return secureCreds{addr: sb.addr("SASL_SSL"), caFile: sb.caFile, caTLS: sb.caPool.Clone(), mech: mech, user: user, password: password}
}

// mtlsCreds returns a new client certificate for name and the credentials
// of the MTLS listener with it.
func (sb *secureBroker) mtlsCreds(t *testing.T, name string) secureCreds {
	pair := sb.ca.Client(t, name)
	return secureCreds{addr: sb.addr("MTLS"), caFile: sb.caFile, caTLS: sb.caPool.Clone(), cert: pair, files: pair.Write(t, t.TempDir(), name)}
}

// startSecureCompatBroker starts the secure broker a client test runs
// against, with its log in logs.
func startSecureCompatBroker(t *testing.T, logs *logSink) *secureBroker {
	return startSecureBroker(t, fastGroups, func(c *Config) { c.Logger = logs.logger() })
}

// runSecureCompat runs the security cases with client c against sb, whose
// log is logs; name prefixes its topics.
func runSecureCompat(t *testing.T, sb *secureBroker, logs *logSink, name string, c secureClient) {
	plain := sb.addr("PLAINTEXT")
	adm := kadm.NewClient(newClient(t, plain))
	// check asserts that topic holds the n records the client produced,
	// read by franz-go and by the client itself.
	check := func(t *testing.T, creds secureCreds, topic string) {
		t.Helper()
		var want []string
		for i := range secureRecords {
			want = append(want, secureValue(i))
		}
		var stored []string
		for _, r := range consumeN(t, plain, topic, secureRecords) {
			stored = append(stored, string(r.Value))
		}
		if !slices.Equal(stored, want) {
			t.Fatalf("franz-go read %q from %s, want %q", stored, topic, want)
		}
		if got := c.consume(t, creds, topic, secureRecords); !slices.Equal(got, want) {
			t.Fatalf("the client read %q from %s, want %q", got, topic, want)
		}
	}
	for _, mech := range secureMechanisms {
		t.Run(mech, func(t *testing.T) {
			topic := name + "-" + strings.ToLower(mech)
			createTopic(t, plain, topic, 1, nil)
			creds := sb.saslCreds(mech, "gateway-plant-a", gatewayPassword)
			before := metricSum(t, sb.Broker, "factorywire_broker_authentications_total", "mechanism", mech)
			err := c.produce(t, creds, topic, secureRecords)
			if c.scramBroken != "" && mech != mechPlain {
				switch {
				case err == nil:
					t.Fatalf("produced with %s, which was documented not to work (%s): update docs/COMPATIBILITY.md and this test", mech, c.scramBroken)
				case !c.authFailed(err, mech):
					t.Fatalf("with %s: %v; want the authentication failure documented (%s)", mech, err, c.scramBroken)
				case len(logs.lines("authentication failed", "mechanism="+mech, "nonce received did not match nonce sent")) == 0:
					t.Fatalf("with %s the client failed, but the broker logged no refused SCRAM nonce: %v", mech, err)
				}
				t.Logf("as documented, %s fails: %s", mech, c.scramBroken)
				return
			}
			if err != nil {
				t.Fatalf("produce as gateway-plant-a with %s over TLS: %v", mech, err)
			}
			check(t, creds, topic)
			if after := metricSum(t, sb.Broker, "factorywire_broker_authentications_total", "mechanism", mech); after <= before {
				t.Fatalf("authentications_total{mechanism=%s} stayed at %v", mech, after)
			}
		})
		t.Run(mech+"/wrong-password", func(t *testing.T) {
			topic := name + "-" + strings.ToLower(mech) + "-denied"
			createTopic(t, plain, topic, 1, nil)
			before := metricSum(t, sb.Broker, "factorywire_broker_authentication_failures_total", "mechanism", mech)
			err := c.produce(t, sb.saslCreds(mech, "gateway-plant-a", "wrong-"+gatewayPassword), topic, secureRecords)
			if err == nil {
				t.Fatalf("produced with a wrong password and %s", mech)
			}
			if !c.authFailed(err, mech) {
				t.Fatalf("with a wrong password and %s: %v; want the client's authentication error", mech, err)
			}
			t.Logf("with a wrong password and %s the client reported: %s", mech, authLine(err))
			if c.scramBroken != "" && mech != mechPlain {
				t.Logf("(this client's SCRAM is refused whatever the password: %s)", c.scramBroken)
			}
			if ends := endOffsets(t, adm, topic); ends[0] != 0 {
				t.Fatalf("%s holds %d records after a refused authentication", topic, ends[0])
			}
			if after := metricSum(t, sb.Broker, "factorywire_broker_authentication_failures_total", "mechanism", mech); after <= before {
				t.Fatalf("authentication_failures_total{mechanism=%s} stayed at %v", mech, after)
			}
		})
	}
	if c.mtls {
		t.Run("mTLS", func(t *testing.T) {
			topic := name + "-mtls"
			createTopic(t, plain, topic, 1, nil)
			creds := sb.mtlsCreds(t, mtlsUser)
			if err := c.produce(t, creds, topic, secureRecords); err != nil {
				t.Fatalf("produce with a client certificate: %v", err)
			}
			check(t, creds, topic)
			if len(logs.lines("principal=User:"+mtlsUser)) == 0 {
				t.Fatalf("the broker logged no request of principal User:%s, the certificate's", mtlsUser)
			}
		})
	}
	for _, pw := range []string{adminPassword, gatewayPassword, sinkPassword} {
		if l := logs.lines(pw); len(l) > 0 {
			t.Fatalf("a password is in the broker's log: %s", strings.ReplaceAll(l[0], pw, "<password>"))
		}
	}
	// Only the client under test speaks SASL here (franz-go uses PLAINTEXT).
	for _, api := range []string{"SASLHandshake", "SASLAuthenticate"} {
		versions := map[string]bool{}
		for _, l := range logs.lines("msg=request", "api="+api+" ") {
			if m := logVersion.FindStringSubmatch(l); m != nil {
				versions["v"+m[1]] = true
			}
		}
		t.Logf("%s used %s %v", name, api, slices.Sorted(maps.Keys(versions)))
	}
}

// logVersion finds the API version in a broker's request log line.
var logVersion = regexp.MustCompile(` version=(\d+)`)

// authLine returns the first line of err's text that speaks of
// authentication, else its first line.
func authLine(err error) string {
	lines := strings.Split(err.Error(), "\n")
	for _, l := range lines {
		if strings.Contains(strings.ToLower(l), "authentication") {
			return strings.TrimSpace(l)
		}
	}
	return lines[0]
}

// ---- librdkafka (kcat) ----

// TestSecureKcat runs the security cases with librdkafka through kcat.
func TestSecureKcat(t *testing.T) {
	kcat := peers.Program(t, "kcat", "install it with: apt-get install kcat")
	c := kcatSecure(t, kcat)
	logs := &logSink{}
	sb := startSecureCompatBroker(t, logs)
	runSecureCompat(t, sb, logs, "kcat", c)
}

// TestKcatSCRAMOnKafka runs kcat's SCRAM-SHA-512 case against Apache
// Kafka 4.1.1 (kafkatest.StartSCRAM): it must end as on our broker, so
// that the limitation TestSecureKcat documents is librdkafka's and Kafka
// refuses what the broker refuses.
func TestKcatSCRAMOnKafka(t *testing.T) {
	kcat := peers.Program(t, "kcat", "install it with: apt-get install kcat")
	c := kcatSecure(t, kcat)
	kafka, caFile := kafkatest.StartSCRAM(t, "gateway-plant-a", gatewayPassword)
	const topic = "kcat-scram-sha-512"
	createTopic(t, kafka.Brokers()[0], topic, 1, nil)
	creds := secureCreds{addr: kafka.ListenerAddrs("SECURE")[0], caFile: caFile, mech: mechScramSHA512, user: "gateway-plant-a", password: gatewayPassword}
	// The credentials are right: franz-go authenticates with them.
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	if err := ping(newClient(t, creds.addr, kgo.DialTLSConfig(&tls.Config{RootCAs: pool}),
		kgo.SASL(mechanism(mechScramSHA512, creds.user, creds.password)))); err != nil {
		t.Fatalf("franz-go with SCRAM-SHA-512 on Apache Kafka: %v", err)
	}
	err = c.produce(t, creds, topic, secureRecords)
	switch {
	case c.scramBroken == "" && err != nil:
		t.Fatalf("SCRAM-SHA-512 on Apache Kafka: %v", err)
	case c.scramBroken != "" && err == nil:
		t.Fatalf("SCRAM-SHA-512 on Apache Kafka worked, but %s", c.scramBroken)
	case c.scramBroken != "" && !c.authFailed(err, mechScramSHA512):
		t.Fatalf("SCRAM-SHA-512 on Apache Kafka: %v; want the authentication failure our broker answers", err)
	case c.scramBroken != "":
		t.Logf("Apache Kafka refuses it too: %s", authLine(err))
	}
}

// librdkafkaSCRAMFixed is the first librdkafka whose SCRAM
// client-final-message carries the nonce RFC 5802 asks for.
var librdkafkaSCRAMFixed = [3]int{2, 6, 1}

// librdkafkaSCRAMBroken returns, for secureClient.scramBroken, why
// librdkafka of version (major.minor.patch) cannot use SCRAM, or "" if it
// can.
func librdkafkaSCRAMBroken(version string) string {
	m := regexp.MustCompile(`^(\d+)\.(\d+)\.(\d+)`).FindStringSubmatch(version)
	if m == nil {
		return ""
	}
	var v [3]int
	for i := range v {
		v[i], _ = strconv.Atoi(m[i+1])
	}
	if slices.Compare(v[:], librdkafkaSCRAMFixed[:]) >= 0 {
		return ""
	}
	return fmt.Sprintf("librdkafka %s puts its client nonce twice in the SCRAM client-final-message (fixed in 2.6.1, confluentinc/librdkafka#4895); "+
		"the broker, as Apache Kafka 4 and RFC 5802, refuses the exchange", m[0])
}

// kcatSecure adapts kcat. Its configuration, password included, goes in a
// file (-F) so that no secret is on a command line.
func kcatSecure(t *testing.T, kcat string) secureClient {
	out, _ := exec.Command(kcat, "-V").CombinedOutput()
	m := regexp.MustCompile(`librdkafka (\d+\.\d+\.\d+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("kcat -V names no librdkafka version: %s", out)
	}
	t.Logf("kcat: librdkafka %s", m[1])
	c := secureClient{mtls: true, scramBroken: librdkafkaSCRAMBroken(m[1])}
	run := func(t *testing.T, creds secureCreds, stdin string, args ...string) (string, error) {
		conf := []string{"ssl.ca.location=" + creds.caFile}
		if creds.mech != "" {
			conf = append(conf, "security.protocol=SASL_SSL", "sasl.mechanisms="+creds.mech,
				"sasl.username="+creds.user, "sasl.password="+creds.password)
		} else {
			conf = append(conf, "security.protocol=SSL", "ssl.certificate.location="+creds.files.Cert, "ssl.key.location="+creds.files.Key)
		}
		file := filepath.Join(t.TempDir(), "kcat.conf")
		if err := os.WriteFile(file, []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		// kcat gives up by itself once authentication fails; the
		// deadline only bounds a kcat that hangs.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, kcat, append([]string{"-F", file, "-b", creds.addr}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		stdout, err := cmd.Output()
		if err != nil {
			return string(stdout), fmt.Errorf("kcat %s: %v\n%s", args[2], err, stderr.String())
		}
		return string(stdout), nil
	}
	c.produce = func(t *testing.T, creds secureCreds, topic string, n int) error {
		var in strings.Builder
		for i := range n {
			fmt.Fprintf(&in, "dev-%d:%s\n", i%10, secureValue(i))
		}
		_, err := run(t, creds, in.String(), "-t", topic, "-P", "-K:", "-X", "acks=all")
		return err
	}
	c.consume = func(t *testing.T, creds secureCreds, topic string, n int) []string {
		out, err := run(t, creds, "", "-t", topic, "-C", "-e", "-o", "beginning", "-f", "%s\n", "-c", strconv.Itoa(n))
		if err != nil {
			t.Fatal(err)
		}
		return strings.Fields(out)
	}
	// librdkafka: "Local: Authentication failure: … SASL authentication
	// error: <the broker's message>".
	c.authFailed = func(err error, mech string) bool {
		return strings.Contains(err.Error(), "Authentication failure") && strings.Contains(err.Error(), authFailedMessage(mech))
	}
	return c
}

// ---- librdkafka (confluent-kafka) ----

// librdkafkaScript produces and consumes with confluent-kafka's Producer
// and Consumer, over the librdkafka its wheel bundles.
const librdkafkaScript = "testdata/librdkafka/produce_consume.py"

// librdkafkaRequirements pins confluent-kafka, installed by .ci/run.
const librdkafkaRequirements = "testdata/librdkafka/requirements.txt"

// librdkafkaPeer returns python3 with confluent-kafka, or skips (fails
// under FACTORYWIRE_REQUIRE_PEERS=1) if it is missing or not the version
// librdkafkaRequirements pins.
func librdkafkaPeer(t *testing.T) peers.Python {
	t.Helper()
	py := peers.ConfluentKafka(t)
	raw, err := os.ReadFile(librdkafkaRequirements)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^confluent-kafka==(\S+)$`).FindSubmatch(raw)
	if m == nil {
		t.Fatalf("%s pins no confluent-kafka==<version>", librdkafkaRequirements)
	}
	if pinned := string(m[1]); py.Version != pinned {
		peers.Missing(t, fmt.Sprintf("confluent-kafka %s is installed in %s, %s is pinned; reinstall it with: %s",
			py.Version, py.Path, pinned, peers.ConfluentKafkaInstall))
	}
	return py
}

// librdkafkaEvent is a line of produce_consume.py's output.
type librdkafkaEvent struct {
	Type, Name, Error, Value string
	Acked                    int
}

// TestSecureLibrdkafka runs the security cases with a current librdkafka:
// the one in confluent-kafka's wheel (confluent-kafka 2.16.2 bundles
// librdkafka 2.16.0), whose SCRAM works where kcat's 2.0.2 does not, as a
// producer with acks=all and a consumer group member.
func TestSecureLibrdkafka(t *testing.T) {
	py := librdkafkaPeer(t)
	t.Logf("confluent-kafka %s, librdkafka %s", py.Version, py.Librdkafka)
	logs := &logSink{}
	sb := startSecureCompatBroker(t, logs)
	// run runs the script's half mode (produce or consume) of n records
	// of topic and returns its events; its error holds librdkafka's
	// error name and message. The password goes in a file.
	run := func(t *testing.T, creds secureCreds, mode, topic string, n int) ([]librdkafkaEvent, error) {
		args := []string{librdkafkaScript, "--mode=" + mode, "--bootstrap=" + creds.addr, "--ssl-ca-location=" + creds.caFile,
			"--topic=" + topic, "--count=" + strconv.Itoa(n), "--client-id=librdkafka-secure", "--timeout=20"}
		if creds.mech == "" {
			args = append(args, "--security-protocol=SSL", "--ssl-certificate-location="+creds.files.Cert, "--ssl-key-location="+creds.files.Key)
		} else {
			pw := filepath.Join(t.TempDir(), "password")
			if err := os.WriteFile(pw, []byte(creds.password), 0o600); err != nil {
				t.Fatal(err)
			}
			args = append(args, "--security-protocol=SASL_SSL", "--sasl-mechanism="+creds.mech,
				"--sasl-username="+creds.user, "--sasl-password-file="+pw)
		}
		// --timeout bounds each wait of the script; this only bounds
		// a python that hangs.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := py.Command(ctx, args...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if creds.password != "" && (strings.Contains(string(out), creds.password) || strings.Contains(stderr.String(), creds.password)) {
			t.Fatalf("produce_consume.py printed the password")
		}
		var events []librdkafkaEvent
		for l := range strings.Lines(string(out)) {
			var e librdkafkaEvent
			if json.Unmarshal([]byte(l), &e) != nil {
				t.Fatalf("produce_consume.py printed %q, not a JSON event", l)
			}
			if e.Type == "fail" {
				return events, fmt.Errorf("librdkafka %s: %s", e.Name, e.Error)
			}
			events = append(events, e)
		}
		if err != nil {
			return events, fmt.Errorf("produce_consume.py --mode=%s: %v\n%s", mode, err, stderr.String())
		}
		return events, nil
	}
	c := secureClient{mtls: true, scramBroken: librdkafkaSCRAMBroken(py.Librdkafka)}
	c.produce = func(t *testing.T, creds secureCreds, topic string, n int) error {
		events, err := run(t, creds, "produce", topic, n)
		if err != nil {
			return err
		}
		if done := events[len(events)-1]; done.Type != "done" || done.Acked != n {
			return fmt.Errorf("produce_consume.py ended with %+v, want %d records acknowledged", done, n)
		}
		return nil
	}
	adm := kadm.NewClient(newClient(t, sb.addr("PLAINTEXT")))
	c.consume = func(t *testing.T, creds secureCreds, topic string, n int) []string {
		events, err := run(t, creds, "consume", topic, n)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range events {
			if e.Type == "rec" {
				got = append(got, e.Value)
			}
		}
		// The script read as a member of group <topic>-readers and
		// committed before leaving.
		if committed := committedOffsets(t, adm, topic+"-readers", topic); committed[0] != int64(n) {
			t.Fatalf("group %s-readers committed %v, want %s/0 at %d", topic, committed, topic, n)
		}
		return got
	}
	// librdkafka: error _AUTHENTICATION ("Local: Authentication
	// failure") through error_cb, "…: SASL authentication error: <the
	// broker's message> (after … in state AUTH_REQ)".
	c.authFailed = func(err error, mech string) bool {
		s := err.Error()
		return strings.Contains(s, "librdkafka _AUTHENTICATION: ") && strings.Contains(s, "SASL authentication error") &&
			strings.Contains(s, authFailedMessage(mech))
	}
	runSecureCompat(t, sb, logs, "librdkafka", c)
}

// ---- kafkajs ----

// TestSecureKafkajs runs the security cases with kafkajs 2.2.4: the
// producer of testdata/kafkajs/produce.js and a consumer group member of
// consume.js.
func TestSecureKafkajs(t *testing.T) {
	node := kafkajsPeer(t)
	logs := &logSink{}
	sb := startSecureCompatBroker(t, logs)
	// args returns the scripts' TLS and SASL arguments; the password goes
	// in a file.
	args := func(t *testing.T, creds secureCreds) []string {
		a := []string{"--brokers=" + creds.addr, "--ca-file=" + creds.caFile}
		if creds.mech == "" {
			return append(a, "--cert-file="+creds.files.Cert, "--key-file="+creds.files.Key)
		}
		pw := filepath.Join(t.TempDir(), "password")
		if err := os.WriteFile(pw, []byte(creds.password), 0o600); err != nil {
			t.Fatal(err)
		}
		return append(a, "--sasl-mechanism="+strings.ToLower(creds.mech), "--sasl-username="+creds.user, "--sasl-password-file="+pw)
	}
	c := secureClient{mtls: true}
	c.produce = func(t *testing.T, creds secureCreds, topic string, n int) error {
		p := startPeer(t, "produce.js", kafkajsDir, node, append([]string{"produce.js", "--topic=" + topic,
			"--count=" + strconv.Itoa(n), "--prefix=v", "--keys=10", "--max-ms=40000"}, args(t, creds)...)...)
		p.waitExit(t, 45*time.Second, false)
		if done := lastOfType(jsEvents(p.stdoutLines()), "done"); p.waitErr == nil && done != nil && done.Acked == n {
			return nil
		}
		for _, l := range p.stdoutLines() {
			var e struct{ Type, Error, Name string }
			if json.Unmarshal([]byte(l), &e) == nil && e.Type == "error" {
				return fmt.Errorf("kafkajs %s: %s", e.Name, e.Error)
			}
		}
		return fmt.Errorf("kafkajs produce: %v%s", p.waitErr, p.diag())
	}
	c.consume = func(t *testing.T, creds secureCreds, topic string, n int) []string {
		p := startPeer(t, "consume.js", kafkajsDir, node, append([]string{"consume.js", "--topic=" + topic,
			"--group=" + topic + "-readers", "--client-id=kafkajs-secure"}, args(t, creds)...)...)
		var got []string
		peerWait(t, 30*time.Second, fmt.Sprintf("kafkajs to consume %d records of %s", n, topic), func() bool {
			got = got[:0]
			for _, e := range jsEvents(p.stdoutLines()) {
				if e.Type == "rec" {
					got = append(got, e.V)
				}
			}
			return len(got) >= n || p.hasExited()
		}, p.diag)
		if len(got) < n {
			t.Fatalf("kafkajs consumed %d of %d records of %s, then exited%s", len(got), n, topic, p.diag())
		}
		p.stop(15 * time.Second)
		return got
	}
	// kafkajs: KafkaJSSASLAuthenticationError "SASL <mechanism>
	// authentication failed: <the broker's message>".
	c.authFailed = func(err error, mech string) bool {
		s := err.Error()
		return strings.Contains(s, "KafkaJSSASLAuthenticationError") && strings.Contains(s, "authentication failed") &&
			strings.Contains(s, authFailedMessage(mech))
	}
	runSecureCompat(t, sb, logs, "kafkajs", c)
}

// ---- sarama ----

// TestSecureSarama runs the security cases with IBM/sarama, SCRAM through
// github.com/xdg-go/scram as sarama's documentation shows.
func TestSecureSarama(t *testing.T) {
	logs := &logSink{}
	sb := startSecureCompatBroker(t, logs)
	config := func(creds secureCreds) *sarama.Config {
		cfg := saramaConfig()
		cfg.Metadata.Retry.Max = 2 // no broker restart here; a refusal is final
		cfg.Net.TLS.Enable = true
		cfg.Net.TLS.Config = creds.caTLS
		if creds.mech == "" {
			cfg.Net.TLS.Config.Certificates = []tls.Certificate{creds.cert.TLS}
			return cfg
		}
		cfg.Net.SASL.Enable = true
		cfg.Net.SASL.Handshake = true
		cfg.Net.SASL.Version = sarama.SASLHandshakeV1
		cfg.Net.SASL.Mechanism = sarama.SASLMechanism(creds.mech)
		cfg.Net.SASL.User, cfg.Net.SASL.Password = creds.user, creds.password
		switch creds.mech {
		case mechScramSHA256:
			cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &saramaSCRAM{hash: scram.SHA256} }
		case mechScramSHA512:
			cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &saramaSCRAM{hash: scram.SHA512} }
		}
		return cfg
	}
	c := secureClient{mtls: true}
	c.produce = func(t *testing.T, creds secureCreds, topic string, n int) error {
		cfg := config(creds)
		cfg.Producer.RequiredAcks = sarama.WaitForAll
		cfg.Producer.Return.Successes = true
		cfg.Producer.Partitioner = sarama.NewManualPartitioner
		p, err := sarama.NewSyncProducer([]string{creds.addr}, cfg)
		if err != nil {
			return err
		}
		defer p.Close()
		var msgs []*sarama.ProducerMessage
		for i := range n {
			msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(fmt.Sprintf("dev-%d", i%10)), Value: sarama.StringEncoder(secureValue(i))})
		}
		return p.SendMessages(msgs)
	}
	c.consume = func(t *testing.T, creds secureCreds, topic string, n int) []string {
		cons, err := sarama.NewConsumer([]string{creds.addr}, config(creds))
		if err != nil {
			t.Fatalf("sarama consumer: %v", err)
		}
		defer cons.Close()
		pc, err := cons.ConsumePartition(topic, 0, sarama.OffsetOldest)
		if err != nil {
			t.Fatalf("sarama consume %s/0: %v", topic, err)
		}
		defer pc.Close()
		var got []string
		timeout := time.After(30 * time.Second)
		for len(got) < n {
			select {
			case m := <-pc.Messages():
				got = append(got, string(m.Value))
			case err := <-pc.Errors():
				t.Fatalf("sarama consume %s/0: %v", topic, err)
			case <-timeout:
				t.Fatalf("sarama read %d of %d records of %s in 30 s", len(got), n, topic)
			}
		}
		return got
	}
	// sarama: KError SASL_AUTHENTICATION_FAILED with the broker's message.
	c.authFailed = func(err error, mech string) bool {
		return errors.Is(err, sarama.ErrSASLAuthenticationFailed) && strings.Contains(err.Error(), authFailedMessage(mech))
	}
	runSecureCompat(t, sb, logs, "sarama", c)
}

// saramaSCRAM is sarama's SCRAMClient over github.com/xdg-go/scram.
type saramaSCRAM struct {
	hash scram.HashGeneratorFcn
	conv *scram.ClientConversation
}

func (s *saramaSCRAM) Begin(user, password, authzID string) error {
	c, err := s.hash.NewClient(user, password, authzID)
	if err != nil {
		return err
	}
	s.conv = c.NewConversation()
	return nil
}

func (s *saramaSCRAM) Step(challenge string) (string, error) { return s.conv.Step(challenge) }

func (s *saramaSCRAM) Done() bool { return s.conv.Done() }

// ---- Apache Kafka's Java client ----

// TestSecureJava runs the security cases with kafka-clients 4.1.1: a
// KafkaProducer and a KafkaConsumer in one JVM (testdata/java/JavaPeer.java),
// configured with security.protocol, sasl.mechanism, sasl.jaas.config and
// PEM trust and key stores.
func TestSecureJava(t *testing.T) {
	logs := &logSink{}
	sb := startSecureCompatBroker(t, logs)
	j := newJavaPeer(t) // after the broker: it stops first
	props := func(creds secureCreds) string {
		p := map[string]string{"ssl.truststore.type": "PEM", "ssl.truststore.location": creds.caFile}
		if creds.mech == "" {
			p["security.protocol"] = "SSL"
			p["ssl.keystore.type"], p["ssl.keystore.location"] = "PEM", creds.files.Chain
			return javaHeaders(p)
		}
		module := "org.apache.kafka.common.security.scram.ScramLoginModule"
		if creds.mech == mechPlain {
			module = "org.apache.kafka.common.security.plain.PlainLoginModule"
		}
		p["security.protocol"], p["sasl.mechanism"] = "SASL_SSL", creds.mech
		p["sasl.jaas.config"] = fmt.Sprintf("%s required username=%q password=%q;", module, creds.user, creds.password)
		return javaHeaders(p)
	}
	c := secureClient{mtls: true}
	c.produce = func(t *testing.T, creds secureCreds, topic string, n int) error {
		p := j.newRequest()
		j.call(t, p, fmt.Sprintf("producer %s %s %s none %s %s\n", p.id, creds.addr, topic, javaClientID, props(creds)), 20*time.Second)
		defer j.write("close " + p.id + "\n")
		r := j.newRequest()
		var cmd strings.Builder
		for i := range n {
			fmt.Fprintf(&cmd, "rec %s %s %s %s -\n", p.id, r.id, javaEnc(fmt.Sprintf("dev-%d", i%10)), javaEnc(secureValue(i)))
		}
		fmt.Fprintf(&cmd, "flush %s %s %d\n", p.id, r.id, n)
		j.write(cmd.String())
		// max.block.ms and delivery.timeout.ms bound the producer; this
		// only bounds a JVM that stopped answering.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := j.wait(ctx, r)
		return err
	}
	c.consume = func(t *testing.T, creds secureCreds, topic string, n int) []string {
		r := j.newRequest()
		lines := j.call(t, r, fmt.Sprintf("read %s %s %s %s 0=%d %s\n", r.id, creds.addr, topic, javaClientID, n, props(creds)), 45*time.Second)
		var got []string
		for _, l := range lines {
			if f := strings.Split(l, " "); f[0] == "rrec" {
				rec, err := javaRecord(f)
				if err != nil {
					t.Fatalf("%q: %v", l, err)
				}
				got = append(got, rec.value)
			}
		}
		return got
	}
	// kafka-clients: SaslAuthenticationException with the broker's message.
	c.authFailed = func(err error, mech string) bool {
		return strings.Contains(err.Error(), "org.apache.kafka.common.errors.SaslAuthenticationException") &&
			strings.Contains(err.Error(), authFailedMessage(mech))
	}
	defer j.diagOnFailure(t)
	runSecureCompat(t, sb, logs, "java", c)
}
