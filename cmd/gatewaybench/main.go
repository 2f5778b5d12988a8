// Command gatewaybench measures what polling costs, in one run: the
// loopback floor (a bare Modbus TCP request loop) against our poller per
// CPU core, and the whole gateway (and its poller alone) against Telegraf
// v1.37.2 polling the same simulated devices every second, for CPU, memory
// and samples per CPU-second. docs/BENCHMARKS.md explains the method and
// holds the figures; internal/gatewaybench holds the logic.
//
//	go run ./cmd/gatewaybench [-telegraf PATH] [-runs 2] [-devices 1000,10000]
//	    [-floor-conns 1,4] [-window 30s] [-parts floor,gateway,poller-only,telegraf]
//	    [-out FILE] [-quick]
//
// The simulators, the broker, our gateway (or its poller alone) and
// Telegraf each run in a child process (this binary re-executed; our
// gateway as the cmd/gateway binary, built with the go command unless
// -gateway says otherwise; telegraf), so the CPU time and the memory read
// from /proc are each one's alone; the floor and poller loops run in this process. Without -telegraf
// the Telegraf runs are skipped and the report says so. Every flag has an environment twin: GATEWAYBENCH_
// and the flag name in upper case with '-' as '_' (GATEWAYBENCH_RUNS=3).
//
// Exit status: 0 when every run completed, 1 when a run failed, 2 for a
// usage error.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/factorywire/factorywire/internal/benchkit"
	"github.com/factorywire/factorywire/internal/gatewaybench"
)

// command is the tool's command line; -cpuprofile is hidden.
var command = benchkit.Command{
	Name:      "gatewaybench",
	Summary:   "Measures the cost of polling: the loopback floor, our poller, the whole gateway and Telegraf.",
	EnvPrefix: "GATEWAYBENCH",
	Hidden:    map[string]bool{"cpuprofile": true},
}

// main runs the benchmark, or, in a child this binary re-executed, the
// role it names (a simulator, the broker, our gateway or our poller).
func main() {
	if role := os.Getenv(gatewaybench.ChildEnv); role != "" {
		os.Exit(gatewaybench.ServeChild(role, os.Args[1:]))
	}
	os.Exit(run(os.Args[1:]))
}

// run parses the flags, runs the benchmark until it ends or SIGINT/SIGTERM
// arrives, and returns the exit status.
func run(args []string) int {
	cfg := gatewaybench.DefaultConfig()
	register := func(fs *flag.FlagSet) {
		fs.IntVar(&cfg.Runs, "runs", cfg.Runs, "runs of every whole-system measurement; tables show the median")
		fs.IntVar(&cfg.FloorRuns, "floor-runs", cfg.FloorRuns, "runs of the floor and the poller (back to back) per connection count")
		fs.Var((*listFlag)(&cfg.Parts), "parts", "what to run, comma separated: floor, gateway, poller-only, telegraf")
		fs.Var((*intsFlag)(&cfg.FloorConns), "floor-conns", "connections of the floor and poller runs, one measurement each, e.g. 1,4")
		fs.DurationVar(&cfg.FloorDuration, "floor-duration", cfg.FloorDuration, "measured window of each floor and poller run")
		fs.DurationVar(&cfg.FloorWarmup, "floor-warmup", cfg.FloorWarmup, "unmeasured start of each floor and poller run")
		fs.IntVar(&cfg.PollerDevices, "poller-devices", cfg.PollerDevices, "devices per connection in the poller runs (all every 100 ms: flat out)")
		fs.Var((*intsFlag)(&cfg.Devices), "devices", "device counts of the whole-system runs at 1 Hz, e.g. 1000,10000")
		fs.IntVar(&cfg.UnitsPerConn, "units-per-conn", cfg.UnitsPerConn, "units behind one Modbus TCP connection (1..247)")
		fs.IntVar(&cfg.ConnsPerSim, "conns-per-sim", cfg.ConnsPerSim, "most connections one simulator process serves")
		fs.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "polling before the window of a whole-system run, after the first sample arrived")
		fs.DurationVar(&cfg.Window, "window", cfg.Window, "measured window of a whole-system run")
		fs.DurationVar(&cfg.Drain, "drain", cfg.Drain, "time after the window for its samples to reach the broker")
		fs.StringVar(&cfg.SpoolSync, "spool-sync", cfg.SpoolSync, "our gateway's spool.sync: always (each scan fsynced before the poller goes on: the gateway's default) or interval (fsync every 200 ms)")
		fs.DurationVar(&cfg.StartTimeout, "start-timeout", cfg.StartTimeout, "bound on a tool's start, until its first sample reaches the broker")
		fs.StringVar(&cfg.Gateway, "gateway", cfg.Gateway, "our gateway in the whole-system runs: build (go build ./cmd/gateway, the binary users deploy), self (this binary's built-in gateway role) or the path of a cmd/gateway binary")
		fs.StringVar(&cfg.Telegraf, "telegraf", cfg.Telegraf, "path of a telegraf v1.37.2 binary (see docs/BENCHMARKS.md); empty skips Telegraf")
		fs.Float64Var(&cfg.QuietCores, "quiet-cores", cfg.QuietCores, "leave runs with more than this many cores of other load out of the medians (0: keep all)")
		fs.StringVar(&cfg.Out, "out", cfg.Out, "also write the markdown report to this file")
		fs.StringVar(&cfg.Dir, "dir", cfg.Dir, "directory for temporary data (removed at the end)")
		fs.BoolVar(&cfg.Quick, "quick", cfg.Quick, "smoke run: short windows, few devices, one run (flags given explicitly still win)")
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
		return gatewaybench.Run(ctx, cfg, os.Stdout, os.Stderr)
	})
}

// listFlag is a comma-separated list of words.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	*l = nil
	for _, w := range strings.Split(s, ",") {
		if w = strings.TrimSpace(w); w != "" {
			*l = append(*l, w)
		}
	}
	return nil
}

// intsFlag is a comma-separated list of integers; 1,000 style separators
// are not accepted (1000,10000).
type intsFlag []int

func (l *intsFlag) String() string {
	s := make([]string, len(*l))
	for i, n := range *l {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

func (l *intsFlag) Set(s string) error {
	*l = nil
	for _, w := range strings.Split(s, ",") {
		if w = strings.TrimSpace(w); w == "" {
			continue
		}
		n, err := strconv.Atoi(w)
		if err != nil {
			return fmt.Errorf("%q is not an integer", w)
		}
		*l = append(*l, n)
	}
	return nil
}
