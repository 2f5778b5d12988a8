package gatewaybench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/internal/benchkit"
	"github.com/factorywire/factorywire/internal/procstat"
)

// systemResult is one whole-system run: a tool (our gateway or Telegraf)
// in its own process polling Devices devices every second from the
// simulators into the broker, measured over a window.
type systemResult struct {
	Tool    string
	Devices int
	Run     int
	Conns   int // Modbus TCP connections
	Sims    int // simulator processes
	Topic   string

	Usage usage // Procs: [0] the tool, [1] the broker, [2:] the simulators
	// Win is what the broker holds of the samples taken during the
	// window (record timestamp = sample time within it), read back after
	// the tool had Config.Drain more to deliver them.
	Win windowRecords
	// Mem is the tool's memory at the end of the window.
	Mem procstat.Mem
	// SpoolBytes is our gateway's spool directory at the end of the window.
	SpoolBytes int64
	// Health is our gateway's device health at the start and the end of
	// the window.
	Health [2]gatewayStats
	// SimRequests is the requests the simulators answered during the
	// window (from their stats, read just outside it).
	SimRequests   uint64
	SimExceptions uint64
	// Tlog is Telegraf's log at the start and the end of the window.
	Tlog [2]telegrafLog
	// Fields is "" when the first sample of the window carries exactly the
	// class's fields, else what differs.
	Fields string
	Err    string
}

func (r systemResult) toolCPU() time.Duration   { return r.Usage.Procs[0] }
func (r systemResult) brokerCPU() time.Duration { return r.Usage.Procs[1] }
func (r systemResult) simCPU() time.Duration {
	var d time.Duration
	for _, p := range r.Usage.Procs[2:] {
		d += p
	}
	return d
}
func (r systemResult) samplesPerSec() float64  { return float64(r.Win.Records) / r.Usage.Wall.Seconds() }
func (r systemResult) expectedPerSec() float64 { return float64(r.Devices) }
func (r systemResult) samplesPerCPUSec() float64 {
	return perCPUSecond(uint64(r.Win.Records), r.toolCPU())
}
func (r systemResult) microsPerSample() float64 {
	if r.Win.Records == 0 {
		return 0
	}
	return float64(r.toolCPU().Microseconds()) / float64(r.Win.Records)
}
func (r systemResult) requestsPerSample() float64 {
	if r.Win.Records == 0 {
		return 0
	}
	return float64(r.SimRequests) / float64(r.Win.Records)
}

// runSystem runs tool over n devices once.
func (b *bench) runSystem(ctx context.Context, tool string, n, run int) (r systemResult) {
	lay := gatewayLayout{Devices: n, UnitsPerConn: b.cfg.UnitsPerConn}
	r = systemResult{Tool: tool, Devices: n, Run: run, Conns: len(lay.conns())}
	r.Sims = (r.Conns + b.cfg.ConnsPerSim - 1) / b.cfg.ConnsPerSim
	factory := fmt.Sprintf("%s-%d-r%d", tool, n, run)
	r.Topic = factory + "." + b.class.Name
	fail := func(format string, args ...any) systemResult {
		r.Err = fmt.Sprintf(format, args...)
		logf(b.log, "%s %d devices run %d: FAILED: %s", tool, n, run, r.Err)
		return r
	}
	dir, err := os.MkdirTemp(b.tmp, factory+"-")
	if err != nil {
		return fail("%v", err)
	}
	defer os.RemoveAll(dir)

	var sims []*proc
	var sut *proc
	defer func() {
		if err := benchkit.StopAll(append(slices.Clone(sims), sut)); err != nil && r.Err == "" {
			r.Err = "stop: " + err.Error()
		}
	}()
	for s := range r.Sims {
		p, err := startRole(ctx, roleSim, []string{"-units", strconv.Itoa(min(n, b.cfg.UnitsPerConn)), "-seed", strconv.Itoa(1000 * s)}, b.log)
		if err != nil {
			return fail("simulator: %v", err)
		}
		sims = append(sims, p)
		lay.Sims = append(lay.Sims, p.Addr)
	}
	if tool != toolPollerOnly {
		if err := b.kafka.createTopic(ctx, r.Topic); err != nil {
			return fail("%v", err)
		}
	}

	logPath := filepath.Join(dir, tool+".log")
	// ask reads our gateway's device health (not Telegraf's).
	ask := func() (gatewayStats, error) { return askGateway(sut) }
	switch {
	case tool == toolOurs && b.gatewayBin != "":
		httpAddr, err := freeLoopbackAddr()
		if err != nil {
			return fail("%v", err)
		}
		cfg := gatewayConfig(lay, factory, b.broker.Addr, filepath.Join(dir, "data"), b.classesDir, b.class.Name)
		cfg.Spool.Sync, cfg.HTTPListen = b.cfg.SpoolSync, httpAddr
		confPath := filepath.Join(dir, "gateway.yaml")
		if sut, err = startConfigured("gateway", b.gatewayBin, confPath, deployedConfig(cfg), logPath,
			"run", "--config", confPath, "--log-level", "warn"); err != nil {
			return fail("%v", err)
		}
		dc := newDevicesClient(httpAddr)
		ask = func() (gatewayStats, error) { return dc.stats(ctx) }
	case tool == toolOurs || tool == toolPollerOnly:
		role := roleGateway
		if tool == toolPollerOnly {
			role = rolePoller
		}
		args := []string{
			"-devices", strconv.Itoa(n), "-units-per-conn", strconv.Itoa(b.cfg.UnitsPerConn),
			"-sims", strings.Join(lay.Sims, ","), "-broker", b.broker.Addr, "-factory", factory,
			"-dir", filepath.Join(dir, "data"), "-classes", b.classesDir, "-spool-sync", b.cfg.SpoolSync,
		}
		if b.cfg.CPUProfileDir != "" {
			args = append(args, "-cpuprofile", filepath.Join(b.cfg.CPUProfileDir, fmt.Sprintf("%s-%d-run%d.pprof", role, n, run)))
		}
		if sut, err = startRole(ctx, role, args, b.log); err != nil {
			return fail("%s: %v", role, err)
		}
	case tool == toolTelegraf:
		conf, err := telegrafConfig(b.class, lay, b.broker.Addr, r.Topic)
		if err != nil {
			return fail("telegraf config: %v", err)
		}
		if b.telegrafSnippet == "" {
			b.telegrafSnippet = snippet(string(conf), len(b.classBlocks)+1)
		}
		confPath := filepath.Join(dir, "telegraf.conf")
		if sut, err = startConfigured("telegraf", b.cfg.Telegraf, confPath, conf, logPath, "--config", confPath); err != nil {
			return fail("%v", err)
		}
	}

	// Wait for the first sample (at the broker, or emitted by the poller
	// alone), then warm up.
	started := time.Now()
	for {
		if tool == toolPollerOnly {
			if st, err := ask(); err == nil && st.Samples > 0 {
				break
			}
		} else if off, err := b.kafka.endOffset(ctx, r.Topic); err == nil && off > 0 {
			break
		}
		if !sut.Alive() {
			return fail("%s exited before producing anything: %v%s", tool, sut.ExitErr(), tail(logPath))
		}
		if time.Since(started) > b.cfg.StartTimeout {
			return fail("no sample reached the broker within %v%s", b.cfg.StartTimeout, tail(logPath))
		}
		if !sleepCtx(ctx, 250*time.Millisecond) {
			return fail("%v", ctx.Err())
		}
	}
	logf(b.log, "%s %d devices run %d: first sample after %v; warming up %v", tool, n, run, time.Since(started).Round(time.Millisecond), b.cfg.Warmup)
	if !sleepCtx(ctx, b.cfg.Warmup) {
		return fail("%v", ctx.Err())
	}

	// The window.
	var off0 int64
	if tool != toolPollerOnly {
		if off0, err = b.kafka.endOffset(ctx, r.Topic); err != nil {
			return fail("end offset: %v", err)
		}
	}
	sim0, err := askSims(sims)
	if err != nil {
		return fail("%v", err)
	}
	if tool != toolTelegraf {
		if r.Health[0], err = ask(); err != nil {
			return fail("%v", err)
		}
	}
	r.Tlog[0] = readTelegrafLog(logPath)
	pids := []int{sut.Pid(), b.broker.Pid()}
	for _, s := range sims {
		pids = append(pids, s.Pid())
	}
	m := startMeter(pids...)
	t0 := m.start
	if !sleepCtx(ctx, b.cfg.Window) {
		return fail("%v", ctx.Err())
	}
	if r.Usage, err = m.stop(); err != nil {
		return fail("%s died during the window: %v%s", tool, err, tail(logPath))
	}
	t1 := t0.Add(r.Usage.Wall)
	if r.Mem, err = procstat.ReadMem(sut.Pid()); err != nil {
		return fail("memory: %v", err)
	}
	r.SpoolBytes = procstat.DirBytes(filepath.Join(dir, "data", "spool"))
	r.Tlog[1] = readTelegrafLog(logPath)
	if tool != toolTelegraf {
		if r.Health[1], err = ask(); err != nil {
			return fail("%v", err)
		}
	}
	sim1, err := askSims(sims)
	if err != nil {
		return fail("%v", err)
	}
	r.SimRequests, r.SimExceptions = sim1.Requests-sim0.Requests, sim1.Exceptions-sim0.Exceptions

	if tool == toolPollerOnly {
		// Nothing reaches the broker: count the samples the poller
		// emitted during the window (its health, read just outside it).
		h0, h1 := r.Health[0], r.Health[1]
		r.Win = windowRecords{Records: int64(h1.Samples - h0.Samples), MinPerKey: int(h1.MinSamples), MaxPerKey: int(h1.MaxSamples)}
		r.Win.Read = r.Win.Records
		b.logSystem(r)
		return r
	}

	// Let the window's last samples reach the broker, stop, read back.
	if !sleepCtx(ctx, b.cfg.Drain) {
		return fail("%v", ctx.Err())
	}
	off2, err := b.kafka.endOffset(ctx, r.Topic)
	if err != nil {
		return fail("end offset: %v", err)
	}
	if err := benchkit.StopAll([]*proc{sut}); err != nil {
		return fail("stop %s: %v", tool, err)
	}
	if r.Win, err = b.kafka.readWindow(ctx, r.Topic, off0, off2, t0, t1); err != nil {
		return fail("%v", err)
	}
	r.Fields = b.checkFields(tool, r.Win.First)
	b.logSystem(r)
	return r
}

// logSystem writes a progress line for a whole-system run.
func (b *bench) logSystem(r systemResult) {
	logf(b.log, "%s %d devices run %d: %.0f samples/s in the window (%d per device: %d..%d), %.3f cores, %.0f samples per CPU-second, RSS %.0f MiB, other load %.2f cores",
		r.Tool, r.Devices, r.Run, r.samplesPerSec(), int(b.cfg.Window.Seconds()), r.Win.MinPerKey, r.Win.MaxPerKey,
		r.Usage.cores(r.toolCPU()), r.samplesPerCPUSec(), mib(r.Mem.RSS), r.Usage.cores(r.Usage.Other))
}

// askSims sums the stats of the simulators.
func askSims(sims []*proc) (simStats, error) {
	var sum simStats
	for _, s := range sims {
		reply, err := s.Ask("stats", 10*time.Second)
		if err != nil {
			return sum, err
		}
		var st simStats
		if err := json.Unmarshal([]byte(reply), &st); err != nil {
			return sum, fmt.Errorf("simulator stats %q: %w", reply, err)
		}
		sum.Requests += st.Requests
		sum.Exceptions += st.Exceptions
		sum.Connections += st.Connections
	}
	return sum, nil
}

// startConfigured writes conf to confPath and starts the program at path
// with args, its output to a new file at logPath.
func startConfigured(name, path, confPath string, conf []byte, logPath string, args ...string) (*proc, error) {
	if err := os.WriteFile(confPath, conf, 0o644); err != nil {
		return nil, err
	}
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	// The child holds its own descriptor of the file.
	defer lf.Close()
	return startProgram(name, path, args, lf)
}

// askGateway reads our gateway's health summary.
func askGateway(p *proc) (gatewayStats, error) {
	var st gatewayStats
	reply, err := p.Ask("stats", 30*time.Second)
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal([]byte(reply), &st); err != nil {
		return st, fmt.Errorf("gateway stats %q: %w", reply, err)
	}
	return st, nil
}

// checkFields compares the fields of a sample from tool with the class's
// and returns "" when they are the same, else what differs.
func (b *bench) checkFields(tool string, value []byte) string {
	if value == nil {
		return "no sample in the window"
	}
	var got []string
	switch tool {
	case toolOurs:
		s, err := devices.DecodeSample(value)
		if err != nil {
			return "sample does not decode: " + err.Error()
		}
		for name := range s.Fields {
			got = append(got, name)
		}
		for name := range s.Errors {
			got = append(got, name+" (error)")
		}
	case toolTelegraf:
		names, err := lineProtocolFields(string(value))
		if err != nil {
			return err.Error()
		}
		got = names
	}
	var want []string
	for _, f := range b.class.Fields {
		want = append(want, f.Name)
	}
	slices.Sort(got)
	slices.Sort(want)
	if slices.Equal(got, want) {
		if b.samples[tool] == "" {
			b.samples[tool] = string(value)
		}
		return ""
	}
	return fmt.Sprintf("fields %v, want %v", got, want)
}

// tail returns the end of a log file, for an error message.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return "; log ends:\n" + string(b)
}

// snippet returns the start of a generated Telegraf configuration: the
// agent, the output, the first input and its first device's blocks.
func snippet(conf string, blocks int) string {
	i := 0
	for n := 0; n <= blocks; n++ {
		j := strings.Index(conf[i:], "\n[[inputs.modbus")
		if n > 0 {
			j = strings.Index(conf[i:], "\n  [[inputs.modbus.request]]")
		}
		if j < 0 {
			return conf
		}
		i += j + 1
	}
	return conf[:i] + "  # ... one such group of blocks per device, one [[inputs.modbus]] per connection\n"
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
