// Command brokerbench measures factorywire's broker against its references
// in the same run: kfake, the reference single-node Go broker, and Apache
// Kafka (one KRaft node) with an fsync before every ack (kafka-fsync, as
// ours) and as shipped (kafka, page cache only): franz-go produce and
// consume throughput, produce ack latency, broker CPU time and broker memory
// as retained data grows. With -only naming ours-sasl-ssl it also runs ours
// behind a SASL_SSL listener (TLS verified against a CA made for the run,
// SCRAM-SHA-512 as a bootstrapped user) beside ours plain, and reports what
// securing the broker costs. docs/BENCHMARKS.md explains the method and
// holds the figures.
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
	"os"

	"github.com/factorywire/factorywire/internal/benchkit"
)

// command is the tool's command line; -cpuprofile is hidden.
var command = benchkit.Command{
	Name:      "brokerbench",
	Summary:   "Runs factorywire's broker, kfake and Apache Kafka in child processes and compares them.",
	EnvPrefix: "BROKERBENCH",
	Hidden:    map[string]bool{"cpuprofile": true},
}

func main() {
	if os.Getenv(childEnv) == "1" {
		os.Exit(serveMain(os.Args[1:]))
	}
	os.Exit(run(os.Args[1:]))
}

// run parses the flags, runs the benchmark until it ends or SIGINT/SIGTERM
// arrives, and returns the exit status.
func run(args []string) int {
	cfg := defaultConfig()
	prepare := func(set map[string]bool) error {
		if cfg.Quick {
			cfg.applyQuick(set)
		}
		return cfg.validate()
	}
	return command.Main(args, cfg.registerFlags, prepare, func(ctx context.Context, commandLine string) error {
		cfg.CommandLine = commandLine
		return newBench(cfg, os.Stdout, os.Stderr).Run(ctx)
	})
}
