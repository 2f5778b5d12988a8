package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/factorywire/factorywire/internal/cli"
	"github.com/factorywire/factorywire/internal/kafkaclient"
	"github.com/factorywire/factorywire/internal/kafkatest"
)

// small is a topology that runs in seconds: one factory, two devices of
// each class polled every 200 ms, figures every 500 ms.
var small = []string{"--factories", "1", "--devices", "2", "--interval", "200ms", "--report", "500ms",
	"--classes-dir", "../../configs/devices", "--log-level", "error"}

// syncBuffer is the demo's output, written by run's goroutine while the
// test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// demoRun is run in a goroutine, as main runs it, until stop cancels its
// context as Ctrl-C does.
type demoRun struct {
	out    *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

func startRun(t *testing.T, args ...string) *demoRun {
	t.Setenv("MONGODB_URI", "") // the embedded stand-in, whatever the environment says
	ctx, cancel := context.WithCancel(context.Background())
	r := &demoRun{out: &syncBuffer{}, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- run(ctx, append(append([]string{}, small...), args...), r.out) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(2 * time.Minute):
			t.Errorf("run did not return within 2m of its context's end")
		}
	})
	return r
}

// stop ends the run as Ctrl-C does and returns run's result.
func (r *demoRun) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // for the clean-up
		return err
	case <-time.After(2 * time.Minute):
		t.Fatalf("run did not return within 2m of its context's end:\n%s", r.out)
		return nil
	}
}

// storedColumn is the stored figure of each report line printed so far.
func storedColumn(out string) []uint64 {
	var stored []uint64
	header := false
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 8 && f[0] == "elapsed" && f[3] == "stored":
			header = true
		case header && len(f) == 8:
			if n, err := strconv.ParseUint(f[3], 10, 64); err == nil {
				stored = append(stored, n)
			}
		}
	}
	return stored
}

// waitStoredGrows waits until two report lines in a row show more samples
// stored than the line before them, the first of them more than none.
func (r *demoRun) waitStoredGrows(t *testing.T) []uint64 {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute) // a bound, not a measurement: the machine is shared
	for {
		stored := storedColumn(r.out.String())
		if n := len(stored); n >= 3 && stored[n-3] > 0 && stored[n-3] < stored[n-2] && stored[n-2] < stored[n-1] {
			return stored
		}
		select {
		case err := <-r.done:
			t.Fatalf("run returned %v before samples were stored:\n%s", err, r.out)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stored column did not grow within 2m:\n%s", r.out)
		}
	}
}

func mustContain(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Fatalf("output lacks %q:\n%s", w, out)
		}
	}
}

// TestDemoOwnBroker runs the demo without --brokers: it starts our broker
// on --listen and says so, and samples get stored.
func TestDemoOwnBroker(t *testing.T) {
	r := startRun(t, "--listen", "127.0.0.1:0")
	stored := r.waitStoredGrows(t)
	// Start-up is left out of the percentiles, but once the sink caught
	// up they show: the last report line has a p50 and a p99.
	var last []string
	for _, line := range strings.Split(r.out.String(), "\n") {
		if f := strings.Fields(line); len(f) == 8 && f[0] != "elapsed" {
			last = f
		}
	}
	for _, q := range last[5:7] {
		if _, err := time.ParseDuration(q); err != nil {
			t.Errorf("last report line %v: percentile %q is not a duration", last, q)
		}
	}
	if err := r.stop(t); err != nil {
		t.Fatalf("run: %v\n%s", err, r.out)
	}
	out := r.out.String()
	mustContain(t, out, "factorywire demo: 1 factories × 2 classes × 2 devices, polled every 200ms",
		"  broker   127.0.0.1:", "  topics   plant-a.press, plant-a.power-meter\n",
		"go run ./cmd/broker topics list --brokers 127.0.0.1:", `find {"meta.tags.line": "line-1"}`, "\nstopping: ")
	if strings.Contains(out, "existing cluster") {
		t.Fatalf("our broker's demo speaks of an existing cluster:\n%s", out)
	}
	t.Logf("stored column: %v", stored)
}

// TestDemoSecure runs `demo --secure`, the secured plant of the README: the
// CA, certificates and passwords are made, the broker serves SCRAM over TLS
// only with ACLs, each component connects as its own user, samples get
// stored, and the banner shows the admin commands with their TLS and SASL
// flags and no password.
func TestDemoSecure(t *testing.T) {
	dir := t.TempDir()
	r := startRun(t, "--secure", "--listen", "127.0.0.1:0", "--data-dir", dir)
	stored := r.waitStoredGrows(t)
	if err := r.stop(t); err != nil {
		t.Fatalf("run: %v\n%s", err, r.out)
	}
	out := r.out.String()
	secure := filepath.Join(dir, "secure")
	mustContain(t, out, "SASL_SSL only (SCRAM-SHA-512 over TLS), ACLs enforced",
		"users    admin (super user), sink, gateway-plant-a",
		"secrets  "+secure,
		"--tls --tls-ca-file "+filepath.Join(secure, "ca.pem")+" --sasl-mechanism SCRAM-SHA-512 --sasl-username admin --sasl-password-file "+filepath.Join(secure, "admin.password"),
		"go run ./cmd/broker acls list --brokers 127.0.0.1:", "kcat -b 127.0.0.1:")
	pws, _ := filepath.Glob(filepath.Join(secure, "*.password"))
	if len(pws) != 3 {
		t.Fatalf("password files %v, want admin, sink and gateway-plant-a's", pws)
	}
	for _, f := range pws {
		raw, _ := os.ReadFile(f)
		if pw := strings.TrimSpace(string(raw)); pw == "" || strings.Contains(out, pw) {
			t.Fatalf("%s: empty, or its password is printed", f)
		}
	}
	t.Logf("stored column: %v", stored)
}

// TestDemoExistingCluster runs the demo with --brokers on a single-node
// Apache Kafka 4.1.1 (internal/kafkatest): it starts no broker of its own,
// creates its topics there with the partitions asked, prints where it
// runs and the admin commands with that --brokers, and samples get
// stored.
func TestDemoExistingCluster(t *testing.T) {
	c := kafkatest.Start(t, kafkatest.Options{})
	brokers := strings.Join(c.Brokers(), ",")
	r := startRun(t, "--brokers", brokers, "--partitions", "2", "--replication-factor", "1", "--min-insync-replicas", "1")
	stored := r.waitStoredGrows(t)
	if err := r.stop(t); err != nil {
		t.Fatalf("run: %v\n%s", err, r.out)
	}
	out := r.out.String()
	mustContain(t, out,
		"  kafka    the existing cluster at "+brokers+" (plaintext, no SASL); our broker is not started\n",
		"  topics   plant-a.press, plant-a.power-meter, each with its .dlq\n",
		"asked: 2 partitions, replication factor 1, min.insync.replicas 1, retention 24h",
		"  go run ./cmd/broker topics list --brokers "+brokers+"\n",
		"  go run ./cmd/broker groups lag --brokers "+brokers+" --group factorywire-sink\n")
	if strings.Contains(out, "  broker   ") || strings.Contains(out, "carry the TLS and SASL flags") {
		t.Fatalf("a plaintext external run speaks of our broker or of TLS flags:\n%s", out)
	}
	t.Logf("stored column: %v", stored)

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Brokers()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	want := map[string]int{"plant-a.press": 2, "plant-a.press.dlq": 1, "plant-a.power-meter": 2, "plant-a.power-meter.dlq": 1}
	names := slices.Sorted(maps.Keys(want))
	details, err := adm.ListTopics(ctx, names...)
	if err != nil {
		t.Fatal(err)
	}
	for name, partitions := range want {
		td, ok := details[name]
		if !ok || td.Err != nil {
			t.Errorf("%s: not on the cluster (%v)", name, td.Err)
			continue
		}
		if len(td.Partitions) != partitions {
			t.Errorf("%s: %d partitions, want %d", name, len(td.Partitions), partitions)
		}
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, names...)
	if err != nil {
		t.Fatal(err)
	}
	for _, rc := range rcs {
		i := slices.IndexFunc(rc.Configs, func(c kadm.Config) bool { return c.Key == "min.insync.replicas" })
		if rc.Err != nil || i < 0 || rc.Configs[i].MaybeValue() != "1" || rc.Configs[i].Source != kmsg.ConfigSourceDynamicTopicConfig {
			t.Errorf("%s: min.insync.replicas not 1 set on the topic (error %v)", rc.Name, rc.Err)
		}
	}
	ends, err := adm.ListEndOffsets(ctx, "plant-a.press", "plant-a.power-meter")
	if err != nil {
		t.Fatal(err)
	}
	var records int64
	ends.Each(func(o kadm.ListedOffset) { records += o.Offset })
	if records == 0 {
		t.Errorf("no samples on the cluster's topics")
	}
}

// TestDemoUsageErrors: flags that cannot work are usage errors (exit
// status 2) naming the flag, before anything starts.
func TestDemoUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"replication on our broker", []string{"--replication-factor", "3"}, "--replication-factor 3: our broker is a single node"},
		{"min.insync.replicas on our broker", []string{"--min-insync-replicas", "1"}, "--min-insync-replicas 1: our broker is a single node"},
		{"TLS without brokers", []string{"--tls"}, "--tls: the TLS and SASL flags connect to an existing cluster"},
		{"listen with brokers", []string{"--brokers", "127.0.0.1:1", "--listen", "127.0.0.1:0"}, "--listen is our broker's address"},
		{"min.insync.replicas above replication", []string{"--brokers", "127.0.0.1:1", "--replication-factor", "2", "--min-insync-replicas", "3"},
			"--min-insync-replicas 3 is more than --replication-factor 2"},
		{"negative replication", []string{"--brokers", "127.0.0.1:1", "--replication-factor", "-1"}, "--replication-factor -1"},
		{"no partitions", []string{"--partitions", "0"}, "--partitions 0"},
		{"SASL without user", []string{"--brokers", "127.0.0.1:1", "--sasl-mechanism", "PLAIN", "--sasl-password-env", "X"}, "--sasl-username"},
		{"broker with a scheme", []string{"--brokers", "kafka://127.0.0.1:1"}, `--brokers "kafka://127.0.0.1:1"`},
		{"unknown flag", []string{"--replicas", "3"}, "replicas"},
		{"unknown log format", []string{"--log-format", "yaml"}, `--log-format "yaml": want text or json`},
		{"secure on an existing cluster", []string{"--brokers", "127.0.0.1:1", "--secure"}, "--secure runs a secured plant on our broker"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), tc.args, &out)
			var ue cli.UsageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run %v: %v, want a usage error naming %q", tc.args, err, tc.want)
			}
			if out.Len() > 0 {
				t.Fatalf("run %v printed:\n%s", tc.args, out.String())
			}
		})
	}
}

// TestConnFlags: the admin commands the banner prints carry the
// connection's TLS and SASL flags, quoted for a shell, and never a
// password.
func TestConnFlags(t *testing.T) {
	c := kafkaclient.Config{
		Brokers: []string{"k1:9093"},
		TLS:     kafkaclient.TLSConfig{Enabled: true, CAFile: "certs/kafka ca.pem", ServerName: "kafka.plant.example"},
		SASL:    kafkaclient.SASLConfig{Mechanism: "SCRAM-SHA-512", Username: "demo", PasswordEnv: "KAFKA_PASSWORD"},
	}
	want := " --tls --tls-ca-file 'certs/kafka ca.pem' --tls-server-name kafka.plant.example --sasl-mechanism SCRAM-SHA-512 --sasl-username demo --sasl-password-env KAFKA_PASSWORD"
	if got := connFlags(c); got != want {
		t.Fatalf("connFlags:\n got %s\nwant %s", got, want)
	}
	if got := connFlags(kafkaclient.Config{Brokers: []string{"k1:9092"}}); got != "" {
		t.Fatalf("connFlags of a plaintext connection: %q", got)
	}
	if got := shellQuote("it's"); got != `'it'\''s'` {
		t.Fatalf("shellQuote: %s", got)
	}
}

// TestDemoHelpAndTakenPort: --help prints the flags and is not an error
// (exit status 0); a --listen address another program holds fails with
// the way out, --listen 127.0.0.1:0, named.
func TestDemoHelpAndTakenPort(t *testing.T) {
	if err := run(context.Background(), []string{"--help"}, io.Discard); err != nil {
		t.Fatalf("run --help: %v, want nil", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	t.Setenv("MONGODB_URI", "")
	args := append(slices.Clone(small), "--listen", ln.Addr().String(), "--data-dir", t.TempDir())
	err = run(context.Background(), args, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--listen 127.0.0.1:0") || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Fatalf("run on a taken port: %v, want an error naming the address and --listen 127.0.0.1:0", err)
	}
}
