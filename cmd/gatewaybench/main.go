// Command gatewaybench measures what polling costs, in one run: the
// loopback floor (a bare Modbus TCP request loop) against our poller per
// CPU core, and the whole gateway (and its poller alone) against Telegraf
// v1.37.2 polling the same simulated devices every second, for CPU, memory
// and samples per CPU-second. docs/BENCHMARKS.md explains the method and
// holds the figures.
//
//	go run ./cmd/gatewaybench [-telegraf PATH] [-runs 2] [-devices 1000,10000]
//	    [-floor-conns 1,4] [-window 30s] [-parts floor,gateway,poller-only,telegraf]
//	    [-out FILE] [-quick]
//
// The simulators, the broker, our gateway (or its poller alone) and
// Telegraf each run in a child process (this binary re-executed, or
// telegraf), so the CPU time and the memory read from /proc are each one's
// alone; the floor and poller loops run in this process. Without -telegraf
// the Telegraf runs are skipped and the report says so. Every flag has an environment twin: GATEWAYBENCH_
// and the flag name in upper case with '-' as '_' (GATEWAYBENCH_RUNS=3).
//
// Exit status: 0 when every run completed, 1 when a run failed, 2 for a
// usage error.
package main

import (
	"context"
	"os"

	"github.com/factorywire/factorywire/internal/benchkit"
)

// command is the tool's command line; -cpuprofile is hidden.
var command = benchkit.Command{
	Name:      "gatewaybench",
	Summary:   "Measures the cost of polling: the loopback floor, our poller, the whole gateway and Telegraf.",
	EnvPrefix: "GATEWAYBENCH",
	Hidden:    map[string]bool{"cpuprofile": true},
}

func main() {
	if role := os.Getenv(childEnv); role != "" {
		os.Exit(childMain(role, os.Args[1:]))
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
