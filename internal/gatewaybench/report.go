package gatewaybench

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/factorywire/factorywire/devices/modbus"
	"github.com/factorywire/factorywire/gateway"
	"github.com/factorywire/factorywire/internal/benchkit"
)

// writeReport renders the report to b.out and, with -out, to that file.
func (b *bench) writeReport() error {
	rep := renderReport(b)
	if _, err := io.WriteString(b.out, rep); err != nil {
		return err
	}
	if b.cfg.Out != "" {
		if err := os.WriteFile(b.cfg.Out, []byte(rep), 0o644); err != nil {
			return fmt.Errorf("-out: %w", err)
		}
	}
	return nil
}

// renderReport renders everything b measured as markdown: the setting,
// median tables with their ratios, the aims, and every single run.
func renderReport(b *bench) string {
	var w strings.Builder
	m := b.machine
	fmt.Fprintf(&w, "# gatewaybench: polling cost vs the loopback floor and Telegraf\n\n")
	fmt.Fprintf(&w, "- date: %s, took %v\n", b.began.UTC().Format("2006-01-02 15:04 MST"), b.ended.Sub(b.began).Round(time.Second))
	fmt.Fprintf(&w, "- command: `%s`\n", b.cfg.CommandLine)
	if m.Source != "" {
		fmt.Fprintf(&w, "- source: %s\n", m.Source)
	}
	fmt.Fprintf(&w, "- machine: %d × %s, %s RAM, Linux %s, %s\n", m.CPUs, m.Model, m.MemTotal, m.Kernel, m.GoVersion)
	fmt.Fprintf(&w, "- load average (1, 5, 15 min; CPU pressure over 60 s / 300 s): %s at start, %s at end\n", m.LoadStart, m.LoadEnd)
	fmt.Fprintf(&w, "- modules: goburrow/modbus %s (under devices/modbus), franz-go %s (the gateway's producer)\n",
		moduleVersion("github.com/goburrow/modbus"), moduleVersion("github.com/twmb/franz-go"))
	fmt.Fprintf(&w, "- device class: %s (%d fields, %d reads per poll: %s), served by devices/simulator in child processes\n",
		b.class.Name, len(b.class.Fields), len(b.class.Plan.Reads), planSummary(b))
	syncNote := "the default"
	if b.cfg.SpoolSync != gateway.DefaultConfig().Spool.Sync {
		syncNote = "not the default: -spool-sync"
	}
	fmt.Fprintf(&w, "- our gateway: gateway.DefaultConfig(), spool.sync %q (%s); %s\n", b.cfg.SpoolSync, syncNote, gatewayNote(b))
	fmt.Fprintf(&w, "- %d run(s) of the floor and the poller per connection count, %d of every whole-system measurement, alternating which goes first; tables show medians; ratios are ratios of the medians unless said otherwise\n", b.cfg.FloorRuns, b.cfg.Runs)
	fmt.Fprintf(&w, "- \"runs\" counts the runs a median uses: those with at most %.2f cores of other load (other processes' CPU: machine-wide busy time from /proc/stat minus every measured process); \"noisy\" means none was that quiet and all are used\n", b.cfg.QuietCores)
	switch {
	case b.telegrafVersion != "":
		fmt.Fprintf(&w, "- telegraf: %s (`%s`)\n", b.telegrafVersion, b.cfg.Telegraf)
	case b.telegrafSkipped != "":
		fmt.Fprintf(&w, "- telegraf: **skipped** (%s)\n", b.telegrafSkipped)
	}
	fmt.Fprintln(&w)

	if len(b.floor) > 0 {
		renderFloor(&w, b)
	}
	if len(b.system) > 0 {
		renderSystem(&w, b)
	}
	renderAims(&w, b)
	if len(b.floor) > 0 || len(b.system) > 0 {
		renderRuns(&w, b)
	}
	benchkit.WriteFailures(&w, b.failures)
	return w.String()
}

func planSummary(b *bench) string {
	var s []string
	for _, r := range b.class.Plan.Reads {
		s = append(s, fmt.Sprintf("%s %d+%d", r.Table, r.Address, r.Quantity))
	}
	return strings.Join(s, ", ")
}

// quietRuns returns the runs whose window had at most cfg.QuietCores of
// other load and a label "used/all" for the table. When no run was that
// quiet, or the filter is off, it returns every run (labelled "noisy" in
// the first case).
func quietRuns[T any](b *bench, rs []T, u func(T) usage) ([]T, string) {
	if b.cfg.QuietCores <= 0 {
		return rs, fmt.Sprintf("%d", len(rs))
	}
	var quiet []T
	for _, r := range rs {
		x := u(r)
		if x.cores(x.Other) <= b.cfg.QuietCores {
			quiet = append(quiet, r)
		}
	}
	if len(quiet) == 0 {
		return rs, fmt.Sprintf("%d/%d noisy", len(rs), len(rs))
	}
	return quiet, fmt.Sprintf("%d/%d", len(quiet), len(rs))
}

// floorMedians are the median figures of one mode and connection count.
type floorMedians struct {
	runs                                  string
	pollsPerSec, reqPerSec, cores         float64
	pollsPerCPU, reqPerCPU, microsPerPoll float64
	simCores, simMicrosPerReq, otherCores float64
	ok                                    bool
}

func floorMediansOf(b *bench, mode string, conns int) floorMedians {
	var rs []floorResult
	for _, r := range b.floor {
		if r.Mode == mode && r.Conns == conns && r.Err == "" {
			rs = append(rs, r)
		}
	}
	if len(rs) == 0 {
		return floorMedians{}
	}
	rs, label := quietRuns(b, rs, func(r floorResult) usage { return r.Usage })
	return floorMedians{
		runs:        label,
		pollsPerSec: benchkit.MedianOf(rs, floorResult.pollsPerSec),
		reqPerSec:   benchkit.MedianOf(rs, floorResult.reqPerSec),
		cores:       benchkit.MedianOf(rs, floorResult.cores),
		pollsPerCPU: benchkit.MedianOf(rs, floorResult.pollsPerCPUSec),
		reqPerCPU:   benchkit.MedianOf(rs, floorResult.reqPerCPUSec),
		microsPerPoll: benchkit.MedianOf(rs, func(r floorResult) float64 {
			return ratio(float64(r.Usage.Self.Microseconds()), float64(r.Polls))
		}),
		simCores:        benchkit.MedianOf(rs, func(r floorResult) float64 { return r.Usage.cores(r.Usage.Procs[0]) }),
		simMicrosPerReq: benchkit.MedianOf(rs, floorResult.simMicrosPerRequest),
		otherCores:      benchkit.MedianOf(rs, func(r floorResult) float64 { return r.Usage.cores(r.Usage.Other) }),
		ok:              true,
	}
}

// pairRatios returns, for every run in which both the floor and the poller
// completed on conns connections, the poller's polls per CPU-second over
// the floor's: the two ran back to back, so each ratio compares like
// conditions. Pairs in which either had more than QuietCores of other load
// are left out, unless none is that quiet; label says how many are used.
func pairRatios(b *bench, conns int) (ratios []float64, label string) {
	type pair struct{ fl, po *floorResult }
	byRun := map[int]*pair{}
	for i := range b.floor {
		r := &b.floor[i]
		if r.Conns != conns || r.Err != "" {
			continue
		}
		p := byRun[r.Run]
		if p == nil {
			p = &pair{}
			byRun[r.Run] = p
		}
		if r.Mode == modeFloor {
			p.fl = r
		} else {
			p.po = r
		}
	}
	var pairs []pair
	for run := 1; run <= b.cfg.FloorRuns; run++ {
		if p := byRun[run]; p != nil && p.fl != nil && p.po != nil {
			pairs = append(pairs, *p)
		}
	}
	pairs, label = quietRuns(b, pairs, func(p pair) usage {
		u := p.fl.Usage
		if p.po.Usage.cores(p.po.Usage.Other) > u.cores(u.Other) {
			u = p.po.Usage
		}
		return u
	})
	for _, p := range pairs {
		ratios = append(ratios, ratio(p.po.pollsPerCPUSec(), p.fl.pollsPerCPUSec()))
	}
	return ratios, label
}

func renderFloor(w *strings.Builder, b *bench) {
	fmt.Fprintf(w, "## Polling flat out: the loopback floor and our poller\n\n")
	fmt.Fprintf(w, "One simulator child process serves units 1..%d; this process polls it over N connections for %v (after %v unmeasured),\n", b.cfg.UnitsPerConn, b.cfg.FloorDuration, b.cfg.FloorWarmup)
	fmt.Fprintf(w, "one request in flight per connection. **floor**: raw Modbus TCP frames written to the socket and the reply read back (transaction id,\n")
	fmt.Fprintf(w, "function and length checked), the class's %d reads per poll, units in turn. **poller**: devices/modbus Conn + Poller, %d devices per\n", len(b.class.Plan.Reads), b.cfg.PollerDevices)
	fmt.Fprintf(w, "connection (units 1..%d over and over) every 100 ms, more than a connection can poll, so it runs flat out; polls are counted from Poller.Health, and Emit drops the samples.\n", b.cfg.UnitsPerConn)
	fmt.Fprintf(w, "CPU is this process's user+system time (getrusage) in the window: per CPU-second means per second of one core.\n\n")
	fmt.Fprintf(w, "| conns | mode | runs | polls/s | requests/s | client cores | **polls per CPU-second** | requests per CPU-second | client CPU µs/poll | simulator cores | simulator CPU µs/request | other load |\n")
	fmt.Fprintf(w, "|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, conns := range b.cfg.FloorConns {
		fl, po := floorMediansOf(b, modeFloor, conns), floorMediansOf(b, modePoller, conns)
		for _, x := range []struct {
			mode string
			m    floorMedians
		}{{modeFloor, fl}, {modePoller, po}} {
			if !x.m.ok {
				continue
			}
			fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %.2f | %s | %s | %.1f | %.2f | %.1f | %.2f |\n", conns, x.mode, x.m.runs,
				num(x.m.pollsPerSec), num(x.m.reqPerSec), x.m.cores, num(x.m.pollsPerCPU), num(x.m.reqPerCPU), x.m.microsPerPoll,
				x.m.simCores, x.m.simMicrosPerReq, x.m.otherCores)
		}
		if fl.ok && po.ok {
			fmt.Fprintf(w, "| %d | **poller/floor** | | %s | %s | %s | **%s** | %s | %s | | | |\n", conns,
				x(po.pollsPerSec, fl.pollsPerSec), x(po.reqPerSec, fl.reqPerSec), x(po.cores, fl.cores),
				x(po.pollsPerCPU, fl.pollsPerCPU), x(po.reqPerCPU, fl.reqPerCPU), x(po.microsPerPoll, fl.microsPerPoll))
			if rs, label := pairRatios(b, conns); len(rs) > 0 {
				fmt.Fprintf(w, "| %d | poller/floor per run | %s | | | | %s (%s–%s) | | | | | |\n", conns, label,
					xf(benchkit.Median(rs)), xf(slices.Min(rs)), xf(slices.Max(rs)))
			}
		}
	}
	fmt.Fprintf(w, "\nFor polls/s and per CPU-second above 1× is better; for µs/poll below 1× is better. \"poller/floor per run\" is the median\n")
	fmt.Fprintf(w, "(and range) of the ratio within each run, where the two ran back to back: the ratio least moved by the machine's state.\n\n")
}

// systemMedians are the median figures of one tool and device count.
type systemMedians struct {
	runs                                    string
	samplesPerSec, cores, perCPU, microsPer float64
	rss, hwm, spool, brokerCores, simCores  float64
	reqPerSample, otherCores                float64
	minPer, maxPer                          int
	conns, sims                             int
	ok                                      bool
}

func systemRunsOf(b *bench, tool string, n int) []systemResult {
	var rs []systemResult
	for _, r := range b.system {
		if r.Tool == tool && r.Devices == n && r.Err == "" {
			rs = append(rs, r)
		}
	}
	return rs
}

func systemMediansOf(b *bench, tool string, n int) systemMedians {
	rs := systemRunsOf(b, tool, n)
	if len(rs) == 0 {
		return systemMedians{}
	}
	rs, label := quietRuns(b, rs, func(r systemResult) usage { return r.Usage })
	m := systemMedians{
		runs:          label,
		samplesPerSec: benchkit.MedianOf(rs, systemResult.samplesPerSec),
		cores:         benchkit.MedianOf(rs, func(r systemResult) float64 { return r.Usage.cores(r.toolCPU()) }),
		perCPU:        benchkit.MedianOf(rs, systemResult.samplesPerCPUSec),
		microsPer:     benchkit.MedianOf(rs, systemResult.microsPerSample),
		rss:           benchkit.MedianOf(rs, func(r systemResult) float64 { return mib(r.Mem.RSS) }),
		hwm:           benchkit.MedianOf(rs, func(r systemResult) float64 { return mib(r.Mem.HWM) }),
		spool:         benchkit.MedianOf(rs, func(r systemResult) float64 { return mib(r.SpoolBytes) }),
		brokerCores:   benchkit.MedianOf(rs, func(r systemResult) float64 { return r.Usage.cores(r.brokerCPU()) }),
		simCores:      benchkit.MedianOf(rs, func(r systemResult) float64 { return r.Usage.cores(r.simCPU()) }),
		reqPerSample:  benchkit.MedianOf(rs, systemResult.requestsPerSample),
		otherCores:    benchkit.MedianOf(rs, func(r systemResult) float64 { return r.Usage.cores(r.Usage.Other) }),
		conns:         rs[0].Conns,
		sims:          rs[0].Sims,
		ok:            true,
	}
	m.minPer, m.maxPer = rs[0].Win.MinPerKey, rs[0].Win.MaxPerKey
	for _, r := range rs {
		m.minPer, m.maxPer = min(m.minPer, r.Win.MinPerKey), max(m.maxPer, r.Win.MaxPerKey)
	}
	return m
}

func renderSystem(w *strings.Builder, b *bench) {
	fmt.Fprintf(w, "## Whole system at 1 Hz: our gateway vs Telegraf\n\n")
	fmt.Fprintf(w, "Each tool runs alone in its own child process and polls every device once a second from simulator child processes\n")
	fmt.Fprintf(w, "(%d units per Modbus TCP connection, at most %d connections per simulator process) into our broker (another child, fsync before ack),\n", b.cfg.UnitsPerConn, b.cfg.ConnsPerSim)
	fmt.Fprintf(w, "one topic of %d partition per run. The window is %v, after the first sample reached the broker and %v more.\n", topicPartitions, b.cfg.Window, b.cfg.Warmup)
	fmt.Fprintf(w, "samples/s counts the records at the broker whose timestamp (the sample's time) falls in the window, read back %v after it;\n", b.cfg.Drain)
	fmt.Fprintf(w, "\"per device\" is the fewest and most such samples one device had (%d expected), over the runs used. CPU and memory are the tool's\n", int(b.cfg.Window.Seconds()))
	fmt.Fprintf(w, "process's; requests/sample is the simulators' answered requests per sample (%d reads per poll in the class's plan).\n", len(b.class.Plan.Reads))
	fmt.Fprintf(w, "**poller-only** is our gateway's connections and poller alone (devices/modbus as gateway.New builds them, without metrics), whose Emit\n")
	fmt.Fprintf(w, "encodes the sample's JSON and drops it: no spool, no forwarder, no Kafka; its samples are counted from Poller.Health.\n\n")
	fmt.Fprintf(w, "| devices | tool | runs | conns × units | samples/s | per device | requests/sample | tool cores | **samples per CPU-second** | CPU µs/sample | VmRSS MiB | VmHWM MiB | spool MiB | broker cores | simulator cores | other load |\n")
	fmt.Fprintf(w, "|--:|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, n := range b.cfg.Devices {
		ours, po, tg := systemMediansOf(b, toolOurs, n), systemMediansOf(b, toolPollerOnly, n), systemMediansOf(b, toolTelegraf, n)
		for _, t := range []struct {
			tool string
			m    systemMedians
		}{{toolOurs, ours}, {toolPollerOnly, po}, {toolTelegraf, tg}} {
			if !t.m.ok {
				continue
			}
			spool := "–"
			if t.tool == toolOurs {
				spool = fmt.Sprintf("%.1f", t.m.spool)
			}
			fmt.Fprintf(w, "| %s | %s | %s | %d × %d | %s | %d–%d | %.2f | %.3f | %s | %.1f | %.0f | %.0f | %s | %.3f | %.2f | %.2f |\n",
				num(float64(n)), t.tool, t.m.runs, t.m.conns, min(n, b.cfg.UnitsPerConn), num(t.m.samplesPerSec), t.m.minPer, t.m.maxPer,
				t.m.reqPerSample, t.m.cores, num(t.m.perCPU), t.m.microsPer, t.m.rss, t.m.hwm, spool, t.m.brokerCores, t.m.simCores, t.m.otherCores)
		}
		for _, t := range []struct {
			name string
			m    systemMedians
		}{{"ours", ours}, {"poller-only", po}} {
			if t.m.ok && tg.ok {
				fmt.Fprintf(w, "| %s | **%s/telegraf** | | | %s | | | %s | **%s** | %s | %s | %s | | | | |\n", num(float64(n)), t.name,
					x(t.m.samplesPerSec, tg.samplesPerSec), x(t.m.cores, tg.cores), x(t.m.perCPU, tg.perCPU),
					x(t.m.microsPer, tg.microsPer), x(t.m.rss, tg.rss), x(t.m.hwm, tg.hwm))
			}
		}
	}
	fmt.Fprintf(w, "\nFor samples per CPU-second above 1× is better; for cores, µs/sample and memory below 1× is better.\n\n")

	var ours, tg []systemResult
	for _, r := range b.system {
		if r.Err != "" {
			continue
		}
		if r.Tool == toolTelegraf {
			tg = append(tg, r)
		} else {
			ours = append(ours, r)
		}
	}
	if len(ours) > 0 {
		fmt.Fprintf(w, "Our poller's device health during the window (Poller.Health, summed over its devices; overruns: polls after which a due time had passed unpolled):\n\n")
		fmt.Fprintf(w, "| devices | tool | run | polls | samples | failed polls | overruns | slowed down | samples per device | a last error |\n|--:|---|--:|--:|--:|--:|--:|--:|--:|---|\n")
		for _, r := range ours {
			h0, h1 := r.Health[0], r.Health[1]
			fmt.Fprintf(w, "| %s | %s | %d | %s | %s | %d | %d | %d | %d–%d | %s |\n", num(float64(r.Devices)), r.Tool, r.Run,
				num(float64(h1.Polls-h0.Polls)), num(float64(h1.Samples-h0.Samples)), h1.Failures-h0.Failures, h1.Overruns-h0.Overruns,
				h1.SlowedDown, h1.MinSamples, h1.MaxSamples, cell(h1.LastError))
		}
		fmt.Fprintln(w)
	}
	if len(tg) > 0 {
		fmt.Fprintf(w, "Telegraf's log during the window (\"slow gathers\": `Collection took longer than expected`, an input that did not finish within its interval):\n\n")
		fmt.Fprintf(w, "| devices | run | slow gathers | warnings | errors | last warning or error |\n|--:|--:|--:|--:|--:|---|\n")
		for _, r := range tg {
			t0, t1 := r.Tlog[0], r.Tlog[1]
			last := ""
			switch {
			case t1.Errors > t0.Errors:
				last = t1.LastError
			case t1.Warnings > t0.Warnings:
				last = t1.LastWarning
			}
			fmt.Fprintf(w, "| %s | %d | %d | %d | %d | %s |\n", num(float64(r.Devices)), r.Run, t1.Slow-t0.Slow, t1.Warnings-t0.Warnings, t1.Errors-t0.Errors, cell(last))
		}
		fmt.Fprintln(w)
	}
	for _, tool := range []string{toolOurs, toolTelegraf} {
		if s := b.samples[tool]; s != "" {
			lang := "json"
			if tool == toolTelegraf {
				lang = "text"
			}
			fmt.Fprintf(w, "One record value from %s (the fields of the class, checked for every run):\n\n```%s\n%s\n```\n\n", tool, lang, strings.TrimSpace(s))
		}
	}
	if b.telegrafSnippet != "" {
		fmt.Fprintf(w, "<details>\n<summary>The generated Telegraf configuration (start)</summary>\n\n```toml\n%s```\n\n</details>\n\n", b.telegrafSnippet)
	}
}

// The aims of issue 16, as the report judges them.
const (
	aimPollerFloor   = 0.9  // the poller's polls per CPU-second against the floor's
	aimOursTelegraf  = 1.5  // the whole gateway's samples per CPU-second against Telegraf's
	aimTelegrafAt    = 1000 // ... at this many devices
	aimRSSOfTelegraf = 0.30 // our RSS against Telegraf's, from aimTelegrafAt devices on: keep it at most this
)

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "**not met**"
}

func renderAims(w *strings.Builder, b *bench) {
	fmt.Fprintf(w, "## Aims, as the tool states them\n\n")
	for _, conns := range b.cfg.FloorConns {
		fl, po := floorMediansOf(b, modeFloor, conns), floorMediansOf(b, modePoller, conns)
		if fl.ok && po.ok {
			asked := float64(conns*b.cfg.PollerDevices) * float64(time.Second/modbus.MinInterval)
			flat := fmt.Sprintf("the poller ran flat out: %s of the %s polls/s asked", num(po.pollsPerSec), num(asked))
			if po.pollsPerSec > 0.9*asked {
				flat = fmt.Sprintf("**the poller did not run flat out**: it polled %s of the %s polls/s asked; raise -poller-devices", num(po.pollsPerSec), num(asked))
			}
			perRun := ""
			if rs, _ := pairRatios(b, conns); len(rs) > 0 {
				perRun = fmt.Sprintf("; per run %s, %s–%s", xf(benchkit.Median(rs)), xf(slices.Min(rs)), xf(slices.Max(rs)))
			}
			fmt.Fprintf(w, "- poller vs loopback floor, %d connection(s): %s vs %s polls per CPU-second: **%s**%s (%s vs %s µs of client CPU per poll; %s); aim ≥ %.1f×: %s\n",
				conns, num(po.pollsPerCPU), num(fl.pollsPerCPU), x(po.pollsPerCPU, fl.pollsPerCPU), perRun, f1(po.microsPerPoll), f1(fl.microsPerPoll), flat,
				aimPollerFloor, met(po.pollsPerCPU >= aimPollerFloor*fl.pollsPerCPU))
		}
	}
	for _, n := range b.cfg.Devices {
		ours, po, tg := systemMediansOf(b, toolOurs, n), systemMediansOf(b, toolPollerOnly, n), systemMediansOf(b, toolTelegraf, n)
		for _, t := range []struct {
			tool string
			m    systemMedians
		}{{toolOurs, ours}, {toolPollerOnly, po}, {toolTelegraf, tg}} {
			if t.m.ok {
				keeps := "keeps up"
				if t.m.samplesPerSec < 0.98*float64(n) || t.m.minPer < int(b.cfg.Window.Seconds())-1 {
					keeps = "**does not keep up**"
				}
				skipped := ""
				if t.tool != toolTelegraf {
					var over uint64
					for _, r := range systemRunsOf(b, t.tool, n) {
						over += r.Health[1].Overruns - r.Health[0].Overruns
					}
					skipped = fmt.Sprintf("; %d polls in the windows of all runs after which a due time had passed unpolled (DeviceHealth.Overruns)", over)
				}
				fmt.Fprintf(w, "- %s, %s devices at 1 Hz: %s samples/s of %s expected (%s), per device %d–%d in %v: %s%s\n", t.tool, num(float64(n)),
					num(t.m.samplesPerSec), num(float64(n)), pct(t.m.samplesPerSec/float64(n)), t.m.minPer, t.m.maxPer, b.cfg.Window, keeps, skipped)
			}
		}
		if ours.ok && tg.ok {
			aim := ""
			if n == aimTelegrafAt {
				aim = fmt.Sprintf(" (aim ≥ %.1f×: %s)", aimOursTelegraf, met(ours.perCPU >= aimOursTelegraf*tg.perCPU))
			}
			fmt.Fprintf(w, "- samples per CPU-second, %s devices: ours %s, Telegraf %s: **%s**%s\n",
				num(float64(n)), num(ours.perCPU), num(tg.perCPU), x(ours.perCPU, tg.perCPU), aim)
			rssAim := ""
			if n >= aimTelegrafAt { // below, both are mostly their runtime
				rssAim = fmt.Sprintf(" (aim: at most %.2f×: %s)", aimRSSOfTelegraf, met(ours.rss <= aimRSSOfTelegraf*tg.rss))
			}
			fmt.Fprintf(w, "- VmRSS, %s devices: ours %s MiB, Telegraf %s MiB: **%s**%s\n",
				num(float64(n)), f1(ours.rss), f1(tg.rss), x(ours.rss, tg.rss), rssAim)
		}
		if po.ok && tg.ok {
			fmt.Fprintf(w, "  - our poller alone (no spool, no Kafka): %s samples per CPU-second, %s Telegraf's whole pipeline\n",
				num(po.perCPU), x(po.perCPU, tg.perCPU))
		}
	}
	if b.telegrafSkipped != "" {
		fmt.Fprintf(w, "- Telegraf comparison: **not measured** (%s); the aim cannot be judged from this run\n", b.telegrafSkipped)
	}
	fmt.Fprintln(w)
}

func renderRuns(w *strings.Builder, b *bench) {
	fmt.Fprintf(w, "## Every run\n\n<details>\n<summary>All %d floor/poller runs and %d whole-system runs behind the medians</summary>\n\n", len(b.floor), len(b.system))
	fmt.Fprintf(w, "\"other load\" is the CPU every other process on the machine used during the window, in cores (of %d): the noise;\n", b.machine.CPUs)
	fmt.Fprintf(w, "\"busy\" is every process's together (measured and other): near %d, the machine was saturated.\n\n", b.machine.CPUs)
	if len(b.floor) > 0 {
		fmt.Fprintf(w, "| run | conns | mode | window s | requests | polls | polls/s | client CPU s | polls per CPU-second | simulator CPU s | other load | busy | error |\n")
		fmt.Fprintf(w, "|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n")
		for _, r := range b.floor {
			if r.Err != "" {
				fmt.Fprintf(w, "| %d | %d | %s | | | | | | | | | | %s |\n", r.Run, r.Conns, r.Mode, cell(r.Err))
				continue
			}
			fmt.Fprintf(w, "| %d | %d | %s | %.2f | %s | %s | %s | %.2f | %s | %.2f | %.2f | %.2f | |\n", r.Run, r.Conns, r.Mode, r.Usage.Wall.Seconds(),
				num(float64(r.Requests)), num(float64(r.Polls)), num(r.pollsPerSec()), r.Usage.Self.Seconds(), num(r.pollsPerCPUSec()),
				r.Usage.Procs[0].Seconds(), r.Usage.cores(r.Usage.Other), r.Usage.busyCores())
		}
		fmt.Fprintln(w)
	}
	if len(b.system) > 0 {
		fmt.Fprintf(w, "| run | devices | tool | conns | sims | samples in window | records read | per device | requests/sample | tool CPU s | samples per CPU-second | VmRSS MiB | VmHWM MiB | broker CPU s | simulator CPU s | other load | busy | error |\n")
		fmt.Fprintf(w, "|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n")
		for _, r := range b.system {
			if r.Err != "" {
				fmt.Fprintf(w, "| %d | %s | %s | %d | %d | | | | | | | | | | | | | %s |\n", r.Run, num(float64(r.Devices)), r.Tool, r.Conns, r.Sims, cell(r.Err))
				continue
			}
			fields := ""
			if r.Fields != "" {
				fields = "fields: " + r.Fields
			}
			fmt.Fprintf(w, "| %d | %s | %s | %d | %d | %s | %s | %d–%d | %.2f | %.2f | %s | %.1f | %.1f | %.2f | %.2f | %.2f | %.2f | %s |\n",
				r.Run, num(float64(r.Devices)), r.Tool, r.Conns, r.Sims, num(float64(r.Win.Records)), num(float64(r.Win.Read)),
				r.Win.MinPerKey, r.Win.MaxPerKey, r.requestsPerSample(), r.toolCPU().Seconds(), num(r.samplesPerCPUSec()),
				mib(r.Mem.RSS), mib(r.Mem.HWM), r.brokerCPU().Seconds(), r.simCPU().Seconds(), r.Usage.cores(r.Usage.Other), r.Usage.busyCores(), cell(fields))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "</details>\n\n")
}

// x formats a/b as a ratio.
func x(a, b float64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

// xf formats a ratio.
func xf(r float64) string { return fmt.Sprintf("%.2f×", r) }

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func pct(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) }
func f1(f float64) string  { return fmt.Sprintf("%.1f", f) }

// num formats a number with thousands separators, no decimals.
func num(f float64) string {
	n := int64(f + 0.5)
	s := fmt.Sprintf("%d", n)
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// cell makes s safe for a markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", "\\|")
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// moduleVersion returns the version of a module this binary was built with.
func moduleVersion(path string) string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == path {
				return d.Version
			}
		}
	}
	return "?"
}

// gatewayNote says which binary ran our gateway in the whole-system runs.
func gatewayNote(b *bench) string {
	switch {
	case b.gatewayBin == "":
		return "run as this binary's built-in gateway role (`-gateway self`: its RSS counts the broker's, the simulator's and this tool's code mapped too)"
	case b.cfg.Gateway == GatewayBuild:
		return fmt.Sprintf("run as the cmd/gateway binary, built from this tree (`go build`, %s), configured by a YAML file as users do", fileMiB(b.gatewayBin))
	}
	return fmt.Sprintf("run as the cmd/gateway binary `%s` (%s), configured by a YAML file as users do", b.gatewayBin, fileMiB(b.gatewayBin))
}

// fileMiB is the size of the file at path in MiB, "?" if unknown.
func fileMiB(path string) string {
	st, err := os.Stat(path)
	if err != nil {
		return "?"
	}
	return fmt.Sprintf("%.1f MiB", mib(st.Size()))
}
