package brokerbench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/factorywire/factorywire/internal/benchkit"
	"github.com/factorywire/factorywire/internal/kafkaclient"
	"github.com/factorywire/factorywire/internal/peers"
	"github.com/factorywire/factorywire/internal/secret"
	"github.com/factorywire/factorywire/storage/commitlog"
)

// TestMain lets the test binary play the broker child: startChild
// re-executes os.Executable, which under `go test` is this binary.
func TestMain(m *testing.M) {
	if os.Getenv(ChildEnv) == "1" {
		os.Exit(ServeChild(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// TestTinyRunBothBrokers runs every scenario once against ours and kfake
// with tiny counts. The bench itself fails a run unless every acknowledged
// record is consumed back, in offset order, with no gap or duplicate, and
// the end offsets equal the acknowledged counts; here we check that no run
// failed, every record came back, and the report holds every table.
// Nothing is timed.
func TestTinyRunBothBrokers(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Only = "both"
	cfg.Records, cfg.RecordsLarge, cfg.Runs = 2_000, 500, 1
	cfg.RSSRecords = 2_000
	cfg.CapacityRecords, cfg.CapacityRecordsLarge = 4_000, 2_000
	cfg.LatencyRate, cfg.LatencyDuration = 1_000, 200*time.Millisecond
	b, out := tinyRun(t, cfg)
	if got, want := len(b.throughput), 3*len(b.scenarios()); got != want {
		t.Errorf("%d throughput runs, want %d (ours, kfake, blackhole)", got, want)
	}
	for _, r := range b.throughput {
		if r.Kind == kindBlackhole {
			continue // produce only
		}
		if want := r.Scenario.Records + warmupRecords; r.Consume.Records != want {
			t.Errorf("%s %s: consumed %d records, want %d", r.Kind, r.Scenario, r.Consume.Records, want)
		}
	}
	if got, want := len(b.capacity), 3*len(b.capacityScenarios()); got != want || want == 0 {
		t.Errorf("%d capacity runs, want %d (ours, kfake, blackhole)", got, want)
	}
	if want := 2 * len(latencyLingers); len(b.latency) != want || len(b.memory) != 2 {
		t.Errorf("%d latency runs and %d memory runs, want %d and 2", len(b.latency), len(b.memory), want)
	}
	for _, section := range []string{"## Produce", "## Produce capacity", "## Consume", "## Ack latency", "## Broker memory", "**ours/kfake**"} {
		if !strings.Contains(out.String(), section) {
			t.Errorf("report lacks %q:\n%s", section, out.String())
		}
	}
}

// TestTinyRunSecure runs the 100 B × 1 p scenarios (single producer and
// capacity), the latency runs and the memory run with tiny counts against
// ours plain and ours over TLS with SCRAM-SHA-512: the secure broker
// starts, every client of every phase authenticates and every produced
// record comes back, and the report compares the two kinds. Nothing is
// timed.
func TestTinyRunSecure(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Only = "ours," + kindOursSASLSSL
	cfg.Scenarios = "100x1"
	cfg.Ceiling = false
	cfg.Records, cfg.Runs = 2_000, 1
	cfg.RSSRecords = 2_000
	cfg.CapacityRecords, cfg.Producers = 2_000, 4
	cfg.LatencyRate, cfg.LatencyDuration = 1_000, 200*time.Millisecond
	b, out := tinyRun(t, cfg)
	kinds := map[string]int{}
	for _, r := range b.throughput {
		kinds[r.Kind]++
		if want := r.Scenario.Records + warmupRecords; r.Consume.Records != want {
			t.Errorf("%s %s: consumed %d records, want %d", r.Kind, r.Scenario, r.Consume.Records, want)
		}
	}
	if kinds[kindOurs] != 1 || kinds[kindOursSASLSSL] != 1 || len(b.throughput) != 2 {
		t.Errorf("throughput runs by kind %v, want one each of ours and %s", kinds, kindOursSASLSSL)
	}
	if len(b.capacity) != 2 || len(b.latency) != 2*len(latencyLingers) || len(b.memory) != 2 {
		t.Errorf("%d capacity, %d latency and %d memory runs, want 2, %d and 2", len(b.capacity), len(b.latency), len(b.memory), 2*len(latencyLingers))
	}
	if !strings.HasPrefix(b.tlsSession, "TLS 1.") {
		t.Errorf("TLS session %q, want the version and cipher suite negotiated", b.tlsSession)
	}
	if _, err := os.Stat(b.secure.Password); !os.IsNotExist(err) {
		t.Errorf("the password file %s outlived the run (%v)", b.secure.Password, err)
	}
	for _, want := range []string{"## TLS and SCRAM", "**" + kindOursSASLSSL + "/ours**", "| produce, 1 producer | 100 B × 1 p |", "| capacity, 4 producers | 100 B × 1 p |", "| consume, 1 consumer |", "linger 0 |", "Memory run, broker VmRSS"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

// TestSecureKindRefusesStrangers starts the secure kind as the bench does
// and checks that it serves its bench user, authenticated as every
// endpoint client is, and nobody else: a plaintext client and a client
// with a wrong password get no answer to ApiVersions.
func TestSecureKindRefusesStrangers(t *testing.T) {
	sec, err := writeSecureFiles(filepath.Join(t.TempDir(), "secure"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := startChild(ctx, kindOursSASLSSL, t.TempDir(), sec.Dir, "", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := p.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	}()
	ping := func(opts []kgo.Opt) error {
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			return err
		}
		defer cl.Close()
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second) // a bound, not a timing
		defer cancel()
		return cl.Ping(pctx)
	}
	ep, err := newEndpoint(kindOursSASLSSL, p.Addr, sec)
	if err != nil {
		t.Fatal(err)
	}
	if err := ping(ep.opts); err != nil {
		t.Fatalf("the bench user's client: %v", err)
	}
	wrong := connConfig(kindOursSASLSSL, p.Addr, sec)
	wrong.SASL.PasswordFile, wrong.SASL.Password = "", secret.New("not-the-password")
	for _, tt := range []struct {
		name    string
		cfg     kafkaclient.Config
		refused func(error) bool
	}{
		{"plaintext", connConfig(kindOurs, p.Addr, sec), func(err error) bool {
			var eof *kgo.ErrFirstReadEOF
			return errors.As(err, &eof)
		}},
		{"wrong password", wrong, func(err error) bool { return errors.Is(err, kerr.SaslAuthenticationFailed) }},
	} {
		opts, err := tt.cfg.Opts(nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := ping(opts); !tt.refused(err) {
			t.Errorf("%s client: %v, want the broker to refuse it", tt.name, err)
		}
	}
}

// TestQuickRunKafka runs the tool as -quick does, against ours, both
// Apache Kafka brokers and the blackhole ceiling, on the 100 B × 1 p
// scenarios (single producer and capacity), the latency runs and the
// memory run: each Kafka starts as a
// java child, gets its JIT warm-up, serves every phase without losing or
// duplicating a record, has its memory read from /proc, and the report
// compares ours with it and states the aims. It skips without java or
// Kafka's jars (fails under FACTORYWIRE_REQUIRE_PEERS=1). Nothing is timed.
func TestQuickRunKafka(t *testing.T) {
	peers.KafkaLibs(t)
	cfg := DefaultConfig()
	cfg.Quick = true
	cfg.ApplyQuick(map[string]bool{})
	cfg.Only = "ours,kafka-fsync,kafka"
	cfg.Scenarios = "100x1"
	cfg.JVMWarmup = 500 * time.Millisecond
	cfg.LatencyDuration = 200 * time.Millisecond
	cfg.PhaseTimeout = time.Minute
	cfg.Dir = t.TempDir()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	b := newBench(cfg, &out, io.Discard)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := b.Run(ctx); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	kinds := []string{kindOurs, kindKafkaFsync, kindKafka}
	if got, want := len(b.throughput), len(kinds)+1; got != want {
		t.Errorf("%d throughput runs, want %d (and blackhole)", got, want)
	}
	for _, r := range b.throughput {
		if r.Kind == kindBlackhole {
			continue // produce only
		}
		if want := r.Scenario.Records + warmupRecords; r.Consume.Records != want {
			t.Errorf("%s %s: consumed %d records, want %d", r.Kind, r.Scenario, r.Consume.Records, want)
		}
		if r.Mem.RSS <= 0 || r.Produce.BrokerCPU < 0 {
			t.Errorf("%s %s: broker RSS %d, CPU %v", r.Kind, r.Scenario, r.Mem.RSS, r.Produce.BrokerCPU)
		}
	}
	if len(b.capacity) != len(kinds)+1 || len(b.latency) != len(kinds)*len(latencyLingers) || len(b.memory) != len(kinds) {
		t.Errorf("%d capacity, %d latency and %d memory runs, want %d, %d and %d",
			len(b.capacity), len(b.latency), len(b.memory), len(kinds)+1, len(kinds)*len(latencyLingers), len(kinds))
	}
	for _, want := range []string{"Apache Kafka 4.", "**ours/kafka-fsync**", "**ours/kafka**", "kafka-fsync", "aim ≥ 2×", "aim lower", "aim ≤ 0.2×", "ours/kafka-fsync |", "could show here is"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

func TestParseOnly(t *testing.T) {
	for _, tt := range []struct {
		only string
		want []string
		err  bool
	}{
		{"all", []string{kindOurs, kindKfake, kindKafkaFsync, kindKafka}, false},
		{"both", []string{kindOurs, kindKfake}, false},
		{"ours", []string{kindOurs}, false},
		{"kafka-fsync, ours", []string{kindOurs, kindKafkaFsync}, false},
		{"KFAKE,kafka", []string{kindKfake, kindKafka}, false},
		{"both,kafka-fsync", []string{kindOurs, kindKfake, kindKafkaFsync}, false},
		{"ours-sasl-ssl,ours", []string{kindOurs, kindOursSASLSSL}, false},
		{"all,ours-sasl-ssl", []string{kindOurs, kindOursSASLSSL, kindKfake, kindKafkaFsync, kindKafka}, false},
		{"blackhole", nil, true},
		{"ours,", nil, true},
		{"", nil, true},
	} {
		t.Run(tt.only, func(t *testing.T) {
			got, err := parseOnly(tt.only)
			if (err != nil) != tt.err || !slices.Equal(got, tt.want) {
				t.Errorf("parseOnly(%q) = %q, %v; want %q, error %v", tt.only, got, err, tt.want, tt.err)
			}
		})
	}
}

func TestOrder(t *testing.T) {
	all := []string{kindOurs, kindKfake, kindKafkaFsync, kindKafka, kindBlackhole}
	for _, tt := range []struct {
		name  string
		kinds []string
		run   int
		want  []string
	}{
		{"two, odd run", []string{kindOurs, kindKfake, kindBlackhole}, 1, []string{kindOurs, kindKfake, kindBlackhole}},
		{"two, even run", []string{kindOurs, kindKfake, kindBlackhole}, 2, []string{kindKfake, kindOurs, kindBlackhole}},
		{"four, run 2", all, 2, []string{kindKfake, kindKafkaFsync, kindKafka, kindOurs, kindBlackhole}},
		{"four, run 4", all[:4], 4, []string{kindKafka, kindOurs, kindKfake, kindKafkaFsync}},
		{"four, run 5", all[:4], 5, all[:4]},
		{"blackhole only", []string{kindBlackhole}, 2, []string{kindBlackhole}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := order(tt.kinds, tt.run); !slices.Equal(got, tt.want) {
				t.Errorf("order(%q, %d) = %q, want %q", tt.kinds, tt.run, got, tt.want)
			}
		})
	}
}

func TestStats(t *testing.T) {
	tests := []struct {
		name     string
		values   []float64
		p50, p99 float64
		median   float64
	}{
		{"empty", nil, 0, 0, 0},
		{"one", []float64{7}, 7, 7, 7},
		{"odd", []float64{1, 2, 3}, 2, 3, 2},
		{"even", []float64{1, 2, 3, 4}, 2, 4, 2.5},
		{"hundred", seq(100), 50, 99, 50.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := benchkit.Percentile(tt.values, 50); got != tt.p50 {
				t.Errorf("p50 = %v, want %v", got, tt.p50)
			}
			if got := benchkit.Percentile(tt.values, 99); got != tt.p99 {
				t.Errorf("p99 = %v, want %v", got, tt.p99)
			}
			if got := benchkit.Median(tt.values); got != tt.median {
				t.Errorf("median = %v, want %v", got, tt.median)
			}
		})
	}
}

// seq returns 1, 2, …, n.
func seq(n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = float64(i + 1)
	}
	return s
}

func TestCommas(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 10_000_000: "10,000,000", -1234: "-1,234"} {
		if got := commas(n); got != want {
			t.Errorf("commas(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestEncodeBatch checks the capacity scenarios' pre-encoded batch: its
// length and CRC32C fields, and every record decoding back with its offset
// delta, key and value.
func TestEncodeBatch(t *testing.T) {
	for _, tt := range []struct {
		name          string
		n, valueBytes int
	}{
		{"100x100B", 100, 100},
		{"3x1000B", 3, 1000},
	} {
		t.Run(tt.name, func(t *testing.T) {
			raw := encodeBatch(tt.n, tt.valueBytes, 1020, kgo.NoCompression())
			var b kmsg.RecordBatch
			if err := b.ReadFrom(raw); err != nil {
				t.Fatal(err)
			}
			if int(b.Length) != len(raw)-12 {
				t.Errorf("length %d, want %d", b.Length, len(raw)-12)
			}
			if want := int32(crc32.Checksum(raw[21:], crc32c)); b.CRC != want {
				t.Errorf("crc %08x, want %08x", b.CRC, want)
			}
			if b.Magic != 2 || b.ProducerID != -1 || b.FirstSequence != -1 || b.Attributes != 0 ||
				b.NumRecords != int32(tt.n) || b.LastOffsetDelta != int32(tt.n-1) {
				t.Errorf("header %+v", b)
			}
			if _, err := commitlog.ParseBatch(raw); err != nil {
				t.Errorf("commitlog.ParseBatch: %v", err)
			}
			rest := b.Records
			for i := range tt.n {
				var r kmsg.Record
				if err := r.ReadFrom(rest); err != nil {
					t.Fatalf("record %d: %v", i, err)
				}
				if want := fmt.Sprintf("device-%04d", (1020+i)%numKeys); r.OffsetDelta != int32(i) || string(r.Key) != want || len(r.Value) != tt.valueBytes {
					t.Fatalf("record %d: offset delta %d, key %q, %d value bytes", i, r.OffsetDelta, r.Key, len(r.Value))
				}
				n := len(binary.AppendVarint(nil, int64(r.Length))) + int(r.Length)
				rest = rest[n:]
			}
			if len(rest) != 0 {
				t.Errorf("%d bytes after the last record", len(rest))
			}
		})
	}
}

// tinyRun runs the bench with cfg, with a minute per phase and two in all,
// in a temporary directory, failing the test if a run fails; it returns
// the bench and its report.
func tinyRun(t *testing.T, cfg Config) (*bench, *strings.Builder) {
	t.Helper()
	cfg.PhaseTimeout = time.Minute
	cfg.Dir = t.TempDir()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	out := &strings.Builder{}
	b := newBench(cfg, out, io.Discard)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := b.Run(ctx); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	return b, out
}
