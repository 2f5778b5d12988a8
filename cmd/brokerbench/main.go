// Command brokerbench measures factorywire's broker against its references
// in the same run: kfake, the reference single-node Go broker, and Apache
// Kafka (one KRaft node) with an fsync before every ack (kafka-fsync, as
// ours) and as shipped (kafka, page cache only): franz-go produce and
// consume throughput, produce ack latency, broker CPU time and broker memory
// as retained data grows. With -only naming ours-sasl-ssl it also runs ours
// behind a SASL_SSL listener (TLS verified against a CA made for the run,
// SCRAM-SHA-512 as a bootstrapped user) beside ours plain, and reports what
// securing the broker costs. docs/BENCHMARKS.md explains the method and
// holds the figures; internal/brokerbench holds the logic.
//
//	go run ./cmd/brokerbench [-runs 3] [-records 5000000] [-records-1000b 1000000]
//	    [-rss-records 10000000] [-only all|both|ours,ours-sasl-ssl,kfake,kafka-fsync,kafka]
//	    [-jvm-warmup 10s] [-ceiling] [-compression none|gzip|snappy|lz4|zstd] [-out FILE] [-quick]
//
// Each broker runs in a child process (this binary, re-executed, or
// Apache Kafka's java process, started through internal/kafkatest with
// Kafka's own JVM options), so the memory and CPU time read from /proc are
// the broker's alone; the clients run in this process. Apache Kafka needs
// java and its jars in .peers/kafka/libs (see internal/peers.KafkaFetch);
// -only ours,kfake runs without them. Every flag has an environment twin: BROKERBENCH_ and the
// flag name in upper case with '-' as '_' (BROKERBENCH_RUNS=5).
//
// Exit status: 0 when every run completed and every produced record was
// consumed, 1 when a run failed, 2 for a usage error.
package main

import (
	"context"
	"flag"
	"os"

	"github.com/factorywire/factorywire/internal/benchkit"
	"github.com/factorywire/factorywire/internal/brokerbench"
)

// command is the tool's command line; -cpuprofile is hidden.
var command = benchkit.Command{
	Name:      "brokerbench",
	Summary:   "Runs factorywire's broker, kfake and Apache Kafka in child processes and compares them.",
	EnvPrefix: "BROKERBENCH",
	Hidden:    map[string]bool{"cpuprofile": true},
}

// main runs the benchmark, or, in a child this binary re-executed to serve
// one broker, that broker.
func main() {
	if os.Getenv(brokerbench.ChildEnv) == "1" {
		os.Exit(brokerbench.ServeChild(os.Args[1:]))
	}
	os.Exit(run(os.Args[1:]))
}

// run parses the flags, runs the benchmark until it ends or SIGINT/SIGTERM
// arrives, and returns the exit status.
func run(args []string) int {
	cfg := brokerbench.DefaultConfig()
	register := func(fs *flag.FlagSet) {
		fs.IntVar(&cfg.Records, "records", cfg.Records, "records per 100 B scenario (produced, then consumed)")
		fs.IntVar(&cfg.RecordsLarge, "records-1000b", cfg.RecordsLarge, "records per 1000 B scenario")
		fs.IntVar(&cfg.Runs, "runs", cfg.Runs, "runs of every scenario per broker; tables show the median")
		fs.IntVar(&cfg.RSSRecords, "rss-records", cfg.RSSRecords, "100 B records the memory run produces into 8 partitions (0 skips it)")
		fs.IntVar(&cfg.LatencyRate, "latency-rate", cfg.LatencyRate, "offered load of the fixed-rate latency run, records/s")
		fs.DurationVar(&cfg.LatencyDuration, "latency-duration", cfg.LatencyDuration, "length of the fixed-rate latency run")
		fs.IntVar(&cfg.Producers, "producers", cfg.Producers, "producers (one client and connection each) of the capacity scenarios; 0 skips them")
		fs.IntVar(&cfg.InFlight, "inflight", cfg.InFlight, "produce requests each capacity producer keeps in flight")
		fs.IntVar(&cfg.BatchRecords, "batch-records", cfg.BatchRecords, "records per capacity produce request (one pre-encoded batch)")
		fs.IntVar(&cfg.CapacityRecords, "capacity-records", cfg.CapacityRecords, "records per 100 B capacity scenario")
		fs.IntVar(&cfg.CapacityRecordsLarge, "capacity-records-1000b", cfg.CapacityRecordsLarge, "records per 1000 B capacity scenario")
		fs.IntVar(&cfg.BufferRecords, "buffer", cfg.BufferRecords, "producer MaxBufferedRecords in throughput runs (0: five full batches in flight per partition plus one)")
		fs.StringVar(&cfg.Only, "only", cfg.Only, "brokers to run, comma-separated: ours, ours-sasl-ssl (ours over TLS with SCRAM-SHA-512), kfake, kafka-fsync, kafka; or both (ours,kfake) or all (all but ours-sasl-ssl)")
		fs.StringVar(&cfg.Scenarios, "scenarios", cfg.Scenarios, "throughput scenarios to run, e.g. 100x1,1000x8 (default: 100x1,100x8,1000x1,1000x8)")
		fs.Float64Var(&cfg.QuietCores, "quiet-cores", cfg.QuietCores, "leave runs with more than this many cores of other load out of the medians (0: keep all)")
		fs.BoolVar(&cfg.Ceiling, "ceiling", cfg.Ceiling, "also produce to kfake with BlackholeProduce (stores nothing): the client's ceiling")
		fs.DurationVar(&cfg.JVMWarmup, "jvm-warmup", cfg.JVMWarmup, "untimed load on its own topic each fresh Apache Kafka gets first, to warm its JIT (0: none)")
		fs.StringVar(&cfg.Out, "out", cfg.Out, "also write the markdown report to this file")
		fs.StringVar(&cfg.Dir, "dir", cfg.Dir, "directory for the brokers' temporary data dirs")
		fs.DurationVar(&cfg.PhaseTimeout, "phase-timeout", cfg.PhaseTimeout, "bound on each produce or consume phase")
		fs.StringVar(&cfg.Compression, "compression", cfg.Compression, "codec of produced batches: none, gzip, snappy, lz4, zstd")
		fs.BoolVar(&cfg.Quick, "quick", cfg.Quick, "smoke run: small counts, one run (flags given explicitly still win)")
		fs.StringVar(&cfg.CPUProfileDir, "cpuprofile", cfg.CPUProfileDir, "")
	}
	prepare := func(set map[string]bool) error {
		if cfg.Quick {
			cfg.ApplyQuick(set)
		}
		return cfg.Validate()
	}
	return command.Main(args, register, prepare, func(ctx context.Context, commandLine string) error {
		cfg.CommandLine = commandLine
		return brokerbench.Run(ctx, cfg, os.Stdout, os.Stderr)
	})
}
