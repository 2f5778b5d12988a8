package brokerbench

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/factorywire/factorywire/internal/kafkatest"
)

// Broker kinds, as the -only flag and the tables name them. kindKafkaFsync
// is Apache Kafka with an fsync before every ack (flush.messages=1), as
// ours by default; kindKafka is Apache Kafka as shipped (no fsync: the page
// cache only). kindBlackhole is kfake with BlackholeProduce: it
// acknowledges produces without storing anything, so its produce rate is
// the ceiling the client and the machine allow, not a broker to compare
// with. kindOursSASLSSL is ours behind one SASL_SSL listener (TLS, then
// SCRAM-SHA-512 as a bootstrapped user), so that the cost of securing a
// plant's broker is measured against ours plain in the same run; it runs
// only when -only names it.
const (
	kindOurs        = "ours"
	kindOursSASLSSL = "ours-sasl-ssl"
	kindKfake       = "kfake"
	kindKafkaFsync  = "kafka-fsync"
	kindKafka       = "kafka"
	kindBlackhole   = "blackhole"
)

// brokerKinds are the brokers -only can name, in the order of the first
// run; allKinds are those "all" names (every one but the secure kind,
// which is a variant of ours, not a broker to compare with); references
// are those ours is compared with, in the tables' order.
var (
	brokerKinds = []string{kindOurs, kindOursSASLSSL, kindKfake, kindKafkaFsync, kindKafka}
	allKinds    = []string{kindOurs, kindKfake, kindKafkaFsync, kindKafka}
	references  = []string{kindKfake, kindKafkaFsync, kindKafka}
)

// comparison is a ratio row of the tables: Num's median over Den's.
type comparison struct{ Num, Den string }

// comparisons are the ratio rows of every table, in order: ours over each
// reference, then ours with TLS and SCRAM over ours plain.
func comparisons() []comparison {
	var cs []comparison
	for _, ref := range references {
		cs = append(cs, comparison{kindOurs, ref})
	}
	return append(cs, comparison{kindOursSASLSSL, kindOurs})
}

// isKafka reports whether kind is Apache Kafka (a java child process).
func isKafka(kind string) bool { return kind == kindKafkaFsync || kind == kindKafka }

// Config is one benchmark run's settings. DefaultConfig gives the defaults
// of a full run (about 26 minutes on a quiet 2-core machine with all four
// brokers, most of it Apache Kafka's; 17.5 minutes with -runs 2);
// ApplyQuick shrinks every count for a smoke run.
type Config struct {
	// Records is how many records each 100 B scenario produces and then
	// consumes. Default 5,000,000.
	Records int
	// RecordsLarge is how many records each 1000 B scenario produces and
	// then consumes. Default 1,000,000.
	RecordsLarge int
	// Runs is how many times each scenario runs against each broker; the
	// tables show the median. Default 3.
	Runs int
	// RSSRecords is how many 100 B records the memory run produces into 8
	// partitions of each broker; 0 skips it. Default 10,000,000.
	RSSRecords int
	// LatencyRate is the offered load of the fixed-rate latency run in
	// records per second (100 B, 1 partition). Default 10,000.
	LatencyRate int
	// LatencyDuration is how long the fixed-rate latency run offers load.
	// Default 5s.
	LatencyDuration time.Duration
	// BufferRecords is the producer's kgo.MaxBufferedRecords in the
	// throughput runs; 0 sizes it per scenario so that every partition can
	// have five full 1 MiB batches in flight and a sixth filling.
	BufferRecords int
	// Producers is how many producers (one franz-go client and connection
	// each) the capacity scenarios run at once; 0 skips those scenarios.
	// Default 16.
	Producers int
	// InFlight is how many produce requests each capacity producer keeps
	// outstanding. Default 4.
	InFlight int
	// BatchRecords is how many records each capacity produce request
	// carries, in one pre-encoded batch. Default 100.
	BatchRecords int
	// CapacityRecords is how many records each 100 B capacity scenario
	// produces. Default 2,000,000 (about 12 s for kfake, 1 s for ours).
	CapacityRecords int
	// CapacityRecordsLarge is how many records each 1000 B capacity
	// scenario produces. Default 1,000,000.
	CapacityRecordsLarge int
	// Only is a comma-separated list of the brokers to run (ours,
	// ours-sasl-ssl, kfake, kafka-fsync, kafka), "both" (ours and kfake)
	// or "all" (default: every one but ours-sasl-ssl).
	Only string
	// Scenarios, if not empty, restricts the throughput runs to a comma
	// separated list of VALUExPARTITIONS names: "100x1,1000x8".
	Scenarios string
	// QuietCores leaves out of the medians every run whose phase shared
	// the machine with more than this many cores of other load (measured
	// from /proc/stat), unless no run of that broker and scenario was that
	// quiet; 0 keeps every run. Default 0.25.
	QuietCores float64
	// Ceiling adds produce-only runs against kfake with BlackholeProduce
	// (no storage, no fsync): the most one producer gets through on this
	// machine. Default true.
	Ceiling bool
	// JVMWarmup is how long each fresh Apache Kafka gets produce load on
	// a topic of its own (then consumed) before anything is timed, so that
	// its JIT compilers have compiled the hot paths; 0 skips it. Default
	// 10s.
	JVMWarmup time.Duration
	// Out is a file to write the markdown report to, besides stdout.
	Out string
	// Dir is where the temporary data directories go. Default: the
	// system temp dir.
	Dir string
	// PhaseTimeout bounds each produce or consume phase. Default 10m.
	PhaseTimeout time.Duration
	// Quick shrinks every count for a smoke run (seconds).
	Quick bool
	// Compression is the codec of every produced batch (the throughput
	// producer's and the capacity scenarios' pre-encoded batches): none,
	// gzip, snappy, lz4 or zstd. Default none.
	Compression string
	// CPUProfileDir, when set, makes every broker child write a CPU
	// profile of its whole life to this directory (hidden flag).
	CPUProfileDir string

	// CommandLine is the invocation, echoed in the report.
	CommandLine string
	// Kafka is where java and Apache Kafka's jars are; Validate finds
	// them when Only names a Kafka broker.
	Kafka kafkatest.Install
}

// DefaultConfig returns the settings of a full run, those of
// `go run ./cmd/brokerbench` without flags.
func DefaultConfig() Config {
	return Config{
		Records:              5_000_000,
		RecordsLarge:         1_000_000,
		Runs:                 3,
		Producers:            16,
		InFlight:             4,
		BatchRecords:         100,
		CapacityRecords:      2_000_000,
		CapacityRecordsLarge: 1_000_000,
		RSSRecords:           10_000_000,
		LatencyRate:          10_000,
		LatencyDuration:      5 * time.Second,
		Only:                 "all",
		Ceiling:              true,
		QuietCores:           0.25,
		Dir:                  os.TempDir(),
		PhaseTimeout:         10 * time.Minute,
		JVMWarmup:            10 * time.Second,
		Compression:          "none",
	}
}

// ApplyQuick shrinks the counts of every flag the user did not set: set
// names the flags given (benchkit.Command.Parse returns them).
func (c *Config) ApplyQuick(set map[string]bool) {
	quick := map[string]func(){
		"records":                func() { c.Records = 20_000 },
		"records-1000b":          func() { c.RecordsLarge = 5_000 },
		"runs":                   func() { c.Runs = 1 },
		"capacity-records":       func() { c.CapacityRecords = 200_000 },
		"capacity-records-1000b": func() { c.CapacityRecordsLarge = 50_000 },
		"rss-records":            func() { c.RSSRecords = 200_000 },
		"latency-duration":       func() { c.LatencyDuration = time.Second },
		"jvm-warmup":             func() { c.JVMWarmup = time.Second },
	}
	for name, apply := range quick {
		if !set[name] {
			apply()
		}
	}
}

// Validate reports the first invalid setting, naming its flag. When Only
// names an Apache Kafka broker it also finds java and Kafka's jars (Kafka).
func (c *Config) Validate() error {
	switch {
	case c.Records < 1 || c.Records > 1_000_000_000:
		return fmt.Errorf("-records %d: must be within [1, 1e9]", c.Records)
	case c.RecordsLarge < 1 || c.RecordsLarge > 1_000_000_000:
		return fmt.Errorf("-records-1000b %d: must be within [1, 1e9]", c.RecordsLarge)
	case c.Runs < 1 || c.Runs > 100:
		return fmt.Errorf("-runs %d: must be within [1, 100]", c.Runs)
	case c.RSSRecords < 0 || c.RSSRecords > 1_000_000_000:
		return fmt.Errorf("-rss-records %d: must be within [0, 1e9]", c.RSSRecords)
	case c.LatencyRate < 1 || c.LatencyRate > 1_000_000:
		return fmt.Errorf("-latency-rate %d: must be within [1, 1e6] records/s", c.LatencyRate)
	case c.LatencyDuration < 100*time.Millisecond || c.LatencyDuration > time.Hour:
		return fmt.Errorf("-latency-duration %v: must be within [100ms, 1h]", c.LatencyDuration)
	case c.Producers < 0 || c.Producers > 1000:
		return fmt.Errorf("-producers %d: must be within [0, 1000]", c.Producers)
	case c.InFlight < 1 || c.InFlight > 64:
		return fmt.Errorf("-inflight %d: must be within [1, 64]", c.InFlight)
	case c.BatchRecords < 1 || c.BatchRecords > 10_000:
		return fmt.Errorf("-batch-records %d: must be within [1, 10000]", c.BatchRecords)
	case c.CapacityRecords < 1 || c.CapacityRecords > 1_000_000_000:
		return fmt.Errorf("-capacity-records %d: must be within [1, 1e9]", c.CapacityRecords)
	case c.CapacityRecordsLarge < 1 || c.CapacityRecordsLarge > 1_000_000_000:
		return fmt.Errorf("-capacity-records-1000b %d: must be within [1, 1e9]", c.CapacityRecordsLarge)
	case c.BufferRecords < 0:
		return fmt.Errorf("-buffer %d: must not be negative", c.BufferRecords)
	case c.QuietCores < 0:
		return fmt.Errorf("-quiet-cores %v: must not be negative", c.QuietCores)
	case c.JVMWarmup < 0 || c.JVMWarmup > 10*time.Minute:
		return fmt.Errorf("-jvm-warmup %v: must be within [0, 10m]", c.JVMWarmup)
	case c.PhaseTimeout < time.Second:
		return fmt.Errorf("-phase-timeout %v: must be at least 1s", c.PhaseTimeout)
	case c.Dir == "":
		return fmt.Errorf("-dir: must not be empty")
	}
	if _, ok := codecs[c.Compression]; !ok {
		return fmt.Errorf("-compression %q: must be one of none, gzip, snappy, lz4, zstd", c.Compression)
	}
	for _, name := range strings.Split(c.Scenarios, ",") {
		if c.Scenarios != "" && !validScenarios[strings.TrimSpace(name)] {
			return fmt.Errorf("-scenarios %q: %q is not one of 100x1, 100x8, 1000x1, 1000x8", c.Scenarios, name)
		}
	}
	if _, err := parseOnly(c.Only); err != nil {
		return err
	}
	if st, err := os.Stat(c.Dir); err != nil || !st.IsDir() {
		return fmt.Errorf("-dir %q: not a directory", c.Dir)
	}
	if slices.ContainsFunc(c.kinds(), isKafka) {
		inst, err := kafkatest.FindInstall()
		if err != nil {
			return fmt.Errorf("-only %q runs Apache Kafka: %w (or leave it out: -only ours,kfake)", c.Only, err)
		}
		c.Kafka = inst
	}
	return nil
}

// parseOnly returns the brokers an -only value names, in brokerKinds'
// order.
func parseOnly(only string) ([]string, error) {
	want := map[string]bool{}
	for _, name := range strings.Split(strings.ToLower(only), ",") {
		switch name = strings.TrimSpace(name); name {
		case "all":
			for _, k := range allKinds {
				want[k] = true
			}
		case "both":
			want[kindOurs], want[kindKfake] = true, true
		default:
			if !slices.Contains(brokerKinds, name) {
				return nil, fmt.Errorf("-only %q: %q is not one of ours, ours-sasl-ssl, kfake, kafka-fsync, kafka, both, all", only, name)
			}
			want[name] = true
		}
	}
	var kinds []string
	for _, k := range brokerKinds {
		if want[k] {
			kinds = append(kinds, k)
		}
	}
	return kinds, nil
}

// validScenarios are the names -scenarios accepts.
var validScenarios = map[string]bool{"100x1": true, "100x8": true, "1000x1": true, "1000x8": true}

// wantScenario reports whether -scenarios selects the scenario of the
// given value size and partitions (single-producer and capacity alike).
func (c *Config) wantScenario(valueBytes, partitions int) bool {
	if c.Scenarios == "" {
		return true
	}
	name := fmt.Sprintf("%dx%d", valueBytes, partitions)
	for _, s := range strings.Split(c.Scenarios, ",") {
		if strings.TrimSpace(s) == name {
			return true
		}
	}
	return false
}

// throughputKinds returns the brokers of the throughput runs, in the order
// of the first run: kinds, then the blackhole ceiling if asked for.
func (c *Config) throughputKinds() []string {
	if c.Ceiling {
		return append(c.kinds(), kindBlackhole)
	}
	return c.kinds()
}

// kinds returns the brokers to run, in the order of the first run.
func (c *Config) kinds() []string {
	kinds, _ := parseOnly(c.Only)
	return kinds
}

// logf writes a progress line.
func logf(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// codecs are the -compression values and their franz-go codecs.
var codecs = map[string]kgo.CompressionCodec{
	"none":   kgo.NoCompression(),
	"gzip":   kgo.GzipCompression(),
	"snappy": kgo.SnappyCompression(),
	"lz4":    kgo.Lz4Compression(),
	"zstd":   kgo.ZstdCompression(),
}
