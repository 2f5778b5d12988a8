package gatewaybench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/internal/benchkit"
	"github.com/factorywire/factorywire/internal/procstat"
)

// sourceDirs are the packages whose code the figures describe.
var sourceDirs = []string{"gateway", "devices", "devices/modbus", "devices/simulator", "storage/commitlog", "internal/recordbatch"}

// bench is one benchmark run: Run measures, then writes the report.
type bench struct {
	cfg     Config
	out     io.Writer // the report
	log     io.Writer // progress lines
	class   *devices.Class
	machine benchkit.Machine
	began   time.Time
	ended   time.Time

	tmp        string // removed at the end
	classesDir string // holds the bench class, for our gateway
	gatewayBin string // the deployed gateway binary (Config.Gateway); "" for the built-in role
	broker     *proc
	kafka      *kafkaAdmin

	floor  []floorResult
	system []systemResult
	// telegrafVersion describes the telegraf binary; telegrafSkipped
	// says why Telegraf did not run.
	telegrafVersion, telegrafSkipped string
	telegrafSnippet                  string            // the start of a generated configuration
	classBlocks                      []telegrafBlock   // the class as Telegraf request blocks
	samples                          map[string]string // tool -> one sample of the window
	failures                         []string
}

// Run runs every part cfg selects, Validate having passed: it writes the
// markdown report to out (and to cfg.Out if set), progress lines and the
// children's stderr to log. It returns an error if a run failed (the
// report lists the failures) or ctx ended.
func Run(ctx context.Context, cfg Config, out, log io.Writer) error {
	return newBench(cfg, out, log).Run(ctx)
}

func newBench(cfg Config, out, log io.Writer) *bench {
	return &bench{cfg: cfg, out: out, log: log, samples: map[string]string{}}
}

// Run runs every part cfg selects, writes the report and returns an error
// if a run failed (the report lists the failures) or ctx ended.
func (b *bench) Run(ctx context.Context) error {
	var err error
	if b.class, err = benchClass(); err != nil {
		return err
	}
	if b.classBlocks, err = telegrafBlocks(b.class); err != nil {
		return err
	}
	if b.tmp, err = os.MkdirTemp(b.cfg.Dir, "gatewaybench-"); err != nil {
		return err
	}
	defer os.RemoveAll(b.tmp)
	if b.cfg.CPUProfileDir != "" {
		if err := os.MkdirAll(b.cfg.CPUProfileDir, 0o755); err != nil {
			return err
		}
	}
	b.began = time.Now()
	b.machine = benchkit.ReadMachine(sourceDirs...)
	logf(b.log, "gatewaybench: %d CPUs, load %s", b.machine.CPUs, b.machine.LoadStart)

	if b.cfg.wants(partFloor) {
		if err := b.runFloors(ctx); err != nil {
			return err
		}
	}
	tools, skipped := b.cfg.tools()
	b.telegrafSkipped = skipped
	if b.cfg.Telegraf != "" {
		b.telegrafVersion = telegrafBuild(b.cfg.Telegraf)
	}
	if len(tools) > 0 {
		if err := b.runSystems(ctx, tools); err != nil {
			return err
		}
	}
	b.ended = time.Now()
	b.machine.LoadEnd = procstat.LoadAvg()
	if err := b.writeReport(); err != nil {
		return err
	}
	if len(b.failures) > 0 {
		return fmt.Errorf("%d runs failed (see the report)", len(b.failures))
	}
	return ctx.Err()
}

// runFloors runs the floor and our poller against one simulator child,
// interleaved: per run and connection count, the floor first in odd runs
// and the poller first in even ones.
func (b *bench) runFloors(ctx context.Context) error {
	units := b.cfg.UnitsPerConn
	sim, err := startRole(ctx, roleSim, []string{"-units", strconv.Itoa(units), "-seed", "0"}, b.log)
	if err != nil {
		return fmt.Errorf("simulator: %w", err)
	}
	defer sim.Stop()
	for run := 1; run <= b.cfg.FloorRuns; run++ {
		for _, conns := range b.cfg.FloorConns {
			modes := []string{modeFloor, modePoller}
			if run%2 == 0 {
				modes = []string{modePoller, modeFloor}
			}
			for _, mode := range modes {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				r := b.runFloor(ctx, mode, conns, run, sim, units)
				b.floor = append(b.floor, r)
				if r.Err != "" {
					b.failures = append(b.failures, fmt.Sprintf("%s, %d connections, run %d: %s", mode, conns, run, r.Err))
					logf(b.log, "%s %d conns run %d: FAILED: %s", mode, conns, run, r.Err)
					continue
				}
				logf(b.log, "%s %d conns run %d: %.0f polls/s, %.0f requests/s, %.3f cores, %.0f polls per CPU-second, simulator %.2f cores, other load %.2f cores",
					mode, conns, run, r.pollsPerSec(), r.reqPerSec(), r.cores(), r.pollsPerCPUSec(),
					r.Usage.cores(r.Usage.Procs[0]), r.Usage.cores(r.Usage.Other))
			}
		}
	}
	return sim.Stop()
}

// runSystems starts the broker and runs every tool over every device
// count, interleaved: ours first in odd runs, Telegraf first in even ones.
func (b *bench) runSystems(ctx context.Context, tools []string) error {
	b.classesDir = filepath.Join(b.tmp, "classes")
	if err := os.MkdirAll(b.classesDir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(b.classesDir, b.class.Name+".yaml"), pressYAML, 0o644); err != nil {
		return err
	}
	var err error
	if slices.Contains(tools, toolOurs) {
		if b.gatewayBin, err = gatewayBinary(ctx, b.cfg.Gateway, b.tmp); err != nil {
			return err
		}
	}
	if b.broker, err = startRole(ctx, roleBroker, []string{"-dir", filepath.Join(b.tmp, "broker")}, b.log); err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	defer b.broker.Stop()
	if b.kafka, err = newKafkaAdmin(b.broker.Addr); err != nil {
		return err
	}
	defer b.kafka.Close()
	for _, n := range b.cfg.Devices {
		for run := 1; run <= b.cfg.Runs; run++ {
			order := tools
			if run%2 == 0 {
				order = reversed(tools)
			}
			for _, tool := range order {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				logf(b.log, "%s %d devices run %d: starting", tool, n, run)
				r := b.runSystem(ctx, tool, n, run)
				b.system = append(b.system, r)
				if r.Err != "" {
					b.failures = append(b.failures, fmt.Sprintf("%s, %d devices, run %d: %s", tool, n, run, r.Err))
				}
			}
		}
	}
	b.kafka.Close()
	return b.broker.Stop()
}

func reversed[T any](s []T) []T {
	out := make([]T, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}
