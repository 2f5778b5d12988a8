package brokerbench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/factorywire/factorywire/internal/procstat"
)

// bench runs every scenario against every broker and renders the report.
type bench struct {
	cfg  Config
	out  io.Writer // the markdown report
	logw io.Writer // progress lines and the children's stderr
	tmp  string    // holds every data dir; removed at the end
	// secure is the secure kind's CA, certificate and password, written
	// under tmp when -only names that kind.
	secure secureFiles
	// tlsSession describes the secure kind's TLS session, as the first
	// secure broker negotiated it: "TLS 1.3, TLS_AES_128_GCM_SHA256".
	tlsSession string

	machine    machineInfo
	started    time.Time
	throughput []throughputRun
	capacity   []capacityRun
	latency    []latencyRun
	memory     []memoryRun
	failures   []string
}

// throughputRun is one scenario's produce and consume phases against one
// fresh broker.
type throughputRun struct {
	Kind     string
	Scenario scenario
	Run      int
	Buffer   int // producer MaxBufferedRecords
	Produce  produceResult
	Consume  consumeResult
	Mem      procstat.Mem // broker memory after both phases
	DiskByte int64        // data dir size after producing
}

// latencyRun is one fixed-rate latency run against one fresh broker.
type latencyRun struct {
	Kind   string
	Run    int
	Linger string // lingerVariant.Name
	Result latencyResult
}

// memorySample is the broker's memory at one point of the memory run.
type memorySample struct {
	Label    string // "after 1,000,000 records", "after consuming all"
	Records  int    // records in the log
	Mem      procstat.Mem
	DiskByte int64
}

// memoryRun is one broker's memory as retained data grows.
type memoryRun struct {
	Kind    string
	Samples []memorySample
	Produce produceResult // the whole produce, latencies excluded
	Consume consumeResult
}

// Run runs the benchmark cfg describes, Validate having passed: it writes
// the markdown report to out (and to cfg.Out if set), progress lines and
// the broker children's stderr to logw. It returns an error if any run
// failed (the report lists the failures) or ctx ended it early.
func Run(ctx context.Context, cfg Config, out, logw io.Writer) error {
	return newBench(cfg, out, logw).Run(ctx)
}

func newBench(cfg Config, out, logw io.Writer) *bench {
	return &bench{cfg: cfg, out: out, logw: logw}
}

// Run runs everything, writes the report and returns an error if any run
// failed or ctx ended it early.
func (b *bench) Run(ctx context.Context) error {
	b.started = time.Now()
	tmp, err := os.MkdirTemp(b.cfg.Dir, "brokerbench-")
	if err != nil {
		return err
	}
	b.tmp = tmp
	defer os.RemoveAll(tmp)
	if b.cfg.CPUProfileDir != "" {
		if err := os.MkdirAll(b.cfg.CPUProfileDir, 0o755); err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
	}

	if slices.Contains(b.cfg.kinds(), kindOursSASLSSL) {
		if b.secure, err = writeSecureFiles(filepath.Join(tmp, "secure")); err != nil {
			return fmt.Errorf("make the %s certificates and password: %w", kindOursSASLSSL, err)
		}
	}

	b.machine = readMachine(tmp)
	if slices.ContainsFunc(b.cfg.kinds(), isKafka) {
		b.machine.Java = javaVersion(b.cfg.Kafka.Java)
	}
	b.machine.Fsync4K, err = measureFsync(tmp, 4<<10, 200)
	if err != nil {
		return fmt.Errorf("measure fsync: %w", err)
	}
	b.machine.Fsync1M, err = measureFsync(tmp, 1<<20, 50)
	if err != nil {
		return fmt.Errorf("measure fsync: %w", err)
	}
	logf(b.logw, "machine: %d CPUs, %s, load %s; fsync 4 KiB p50 %v, 1 MiB p50 %v",
		b.machine.CPUs, b.machine.Model, b.machine.LoadStart, b.machine.Fsync4K[0], b.machine.Fsync1M[0])

	runErr := b.runAll(ctx)
	b.machine.LoadEnd = procstat.LoadAvg()

	report := renderReport(b)
	if _, err := io.WriteString(b.out, report); err != nil {
		return err
	}
	if b.cfg.Out != "" {
		if err := os.WriteFile(b.cfg.Out, []byte(report), 0o644); err != nil {
			return fmt.Errorf("-out: %w", err)
		}
	}
	logf(b.logw, "done in %v", time.Since(b.started).Round(time.Second))
	if runErr != nil {
		return runErr
	}
	if len(b.failures) > 0 {
		return fmt.Errorf("%d runs failed (see the report)", len(b.failures))
	}
	return nil
}

// scenarios returns the throughput scenarios in the order they run.
func (b *bench) scenarios() []scenario {
	all := []scenario{
		{ValueBytes: 100, Partitions: 1, Records: b.cfg.Records},
		{ValueBytes: 100, Partitions: 8, Records: b.cfg.Records},
		{ValueBytes: 1000, Partitions: 1, Records: b.cfg.RecordsLarge},
		{ValueBytes: 1000, Partitions: 8, Records: b.cfg.RecordsLarge},
	}
	if b.cfg.Scenarios == "" {
		return all
	}
	var picked []scenario
	for _, sc := range all {
		if b.cfg.wantScenario(sc.ValueBytes, sc.Partitions) {
			picked = append(picked, sc)
		}
	}
	return picked
}

// capacityScenarios returns the capacity scenarios in the order they run:
// none when -producers is 0.
func (b *bench) capacityScenarios() []capacityScenario {
	if b.cfg.Producers == 0 {
		return nil
	}
	var picked []capacityScenario
	for _, sc := range []capacityScenario{
		{ValueBytes: 100, Partitions: 1, Records: b.cfg.CapacityRecords},
		{ValueBytes: 100, Partitions: 8, Records: b.cfg.CapacityRecords},
		{ValueBytes: 1000, Partitions: 1, Records: b.cfg.CapacityRecordsLarge},
		{ValueBytes: 1000, Partitions: 8, Records: b.cfg.CapacityRecordsLarge},
	} {
		if b.cfg.wantScenario(sc.ValueBytes, sc.Partitions) {
			picked = append(picked, sc)
		}
	}
	return picked
}

// order returns kinds in the order of the given run: the brokers rotate
// which goes first (with ours and kfake: ours in odd runs, kfake in even
// ones), so none always meets a warmer or cooler machine; the blackhole
// ceiling, if there, goes last.
func order(kinds []string, run int) []string {
	brokers := slices.DeleteFunc(slices.Clone(kinds), func(k string) bool { return k == kindBlackhole })
	if len(brokers) == 0 {
		return kinds
	}
	s := (run - 1) % len(brokers)
	out := append(slices.Clone(brokers[s:]), brokers[:s]...)
	if len(out) < len(kinds) {
		out = append(out, kindBlackhole)
	}
	return out
}

// runAll interleaves the brokers scenario by scenario, run by run, then
// runs the memory run. A failed run is recorded and the rest go on; only
// ctx ends everything.
func (b *bench) runAll(ctx context.Context) error {
	for run := 1; run <= b.cfg.Runs; run++ {
		for _, sc := range b.scenarios() {
			for _, kind := range order(b.cfg.throughputKinds(), run) {
				if err := ctx.Err(); err != nil {
					return err
				}
				r, err := b.runThroughput(ctx, kind, sc, run)
				if err != nil {
					b.fail(fmt.Sprintf("run %d, %s, %s", run, sc, kind), err)
					continue
				}
				b.throughput = append(b.throughput, r)
			}
		}
		for _, sc := range b.capacityScenarios() {
			for _, kind := range order(b.cfg.throughputKinds(), run) {
				if err := ctx.Err(); err != nil {
					return err
				}
				r, err := b.runCapacity(ctx, kind, sc, run)
				if err != nil {
					b.fail(fmt.Sprintf("run %d, capacity %s, %s", run, sc, kind), err)
					continue
				}
				b.capacity = append(b.capacity, capacityRun{Kind: kind, Scenario: sc, Run: run, Result: r})
			}
		}
		for _, lv := range latencyLingers {
			for _, kind := range order(b.cfg.kinds(), run) {
				if err := ctx.Err(); err != nil {
					return err
				}
				r, err := b.runLatency(ctx, kind, run, lv)
				if err != nil {
					b.fail(fmt.Sprintf("run %d, latency at %d rec/s, linger %s, %s", run, b.cfg.LatencyRate, lv.Name, kind), err)
					continue
				}
				b.latency = append(b.latency, latencyRun{Kind: kind, Run: run, Linger: lv.Name, Result: r})
			}
		}
	}
	if b.cfg.RSSRecords == 0 {
		return nil
	}
	for _, kind := range b.cfg.kinds() {
		if err := ctx.Err(); err != nil {
			return err
		}
		r, err := b.runMemory(ctx, kind)
		if err != nil {
			b.fail(fmt.Sprintf("memory run, %s", kind), err)
			continue
		}
		b.memory = append(b.memory, r)
	}
	return ctx.Err()
}

func (b *bench) fail(what string, err error) {
	msg := fmt.Sprintf("%s: %v", what, err)
	b.failures = append(b.failures, msg)
	logf(b.logw, "FAILED %s", msg)
}

// withBroker starts a fresh broker of the given kind in a child process
// over a new data dir named name, creates benchTopic with the given
// partitions and waits until the broker serves it, calls f with the
// broker's endpoint set (the client options of its kind), then stops the
// broker and removes its data. A broker that does not stop cleanly (ours,
// kfake) or that exited before it was stopped (Kafka, which is killed)
// fails the run.
func (b *bench) withBroker(ctx context.Context, kind, name string, partitions int, f func(p *brokerProc) error) (err error) {
	dir := filepath.Join(b.tmp, kind+"-"+name)
	var p *brokerProc
	if isKafka(kind) {
		p, err = startKafka(ctx, b.cfg.Kafka, kind, dir)
	} else {
		profile := ""
		if b.cfg.CPUProfileDir != "" {
			profile = filepath.Join(b.cfg.CPUProfileDir, kind+"-"+name+".pprof")
		}
		p, err = startChild(ctx, kind, dir, b.secure.Dir, profile, b.logw)
	}
	if err != nil {
		os.RemoveAll(dir)
		return err
	}
	defer func() {
		if stopErr := p.Stop(); stopErr != nil && err == nil {
			err = fmt.Errorf("stop: %w", stopErr)
		}
		os.RemoveAll(dir)
	}()
	if p.ep, err = newEndpoint(kind, p.Addr, b.secure); err != nil {
		return err
	}
	if kind == kindOursSASLSSL && b.tlsSession == "" {
		if b.tlsSession, err = tlsSession(p.Addr, b.secure); err != nil {
			return err
		}
	}
	if isKafka(kind) && b.cfg.JVMWarmup > 0 {
		if err := warmJVM(ctx, p.ep, kind, b.cfg.JVMWarmup); err != nil {
			return fmt.Errorf("JIT warm-up: %w", err)
		}
	}
	if err := createTopic(ctx, p.ep, benchTopic, partitions, kafkaTopicConfigs(kind)); err != nil {
		return err
	}
	if err := waitTopic(ctx, p.ep, benchTopic, partitions); err != nil {
		return err
	}
	return f(p)
}

// phase returns a context bounded by the phase timeout.
func (b *bench) phase(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, b.cfg.PhaseTimeout)
}

// runThroughput produces sc.Records as fast as possible, checks the end
// offsets, then consumes everything from offset 0 (but from the blackhole,
// which keeps nothing).
func (b *bench) runThroughput(ctx context.Context, kind string, sc scenario, run int) (throughputRun, error) {
	r := throughputRun{Kind: kind, Scenario: sc, Run: run, Buffer: b.cfg.BufferRecords}
	if r.Buffer == 0 {
		r.Buffer = autoBuffer(sc.ValueBytes, sc.Partitions)
	}
	err := b.withBroker(ctx, kind, fmt.Sprintf("%s-run%d", sc.slug(), run), sc.Partitions, func(bp *brokerProc) error {
		pr, err := newBenchProducer(bp.ep, sc, r.Buffer, kgo.ProducerBatchCompression(codecs[b.cfg.Compression]))
		if err != nil {
			return err
		}
		defer pr.close()
		pctx, cancel := b.phase(ctx)
		defer cancel()
		if err := pr.warmup(pctx); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		if r.Produce, err = pr.produceFull(pctx, sc.Records, bp.Pid()); err != nil {
			return err
		}
		want := pr.counts.snapshot()
		if err := checkEndOffsets(pctx, bp.ep, want); err != nil {
			return err
		}
		r.DiskByte = bp.diskBytes()
		if kind == kindBlackhole {
			r.Mem, err = procstat.ReadMem(bp.Pid())
			return err // it kept nothing to consume
		}
		cctx, cancel := b.phase(ctx)
		defer cancel()
		if r.Consume, err = consumeAll(cctx, bp.ep, want, sc.ValueBytes, bp.Pid()); err != nil {
			return err
		}
		r.Mem, err = procstat.ReadMem(bp.Pid())
		return err
	})
	if err != nil {
		return r, err
	}
	logf(b.logw, "run %d %-12s %-9s produce %8.0f rec/s p50 %-8v p99 %-8v cpu %4.1fs client %4.1fs others %.1f cores, %d requests, %.0f rec/batch | consume %8.0f rec/s cpu %4.1fs | rss %s",
		run, sc, kind, r.Produce.recPerSec(), r.Produce.P50.Round(time.Microsecond), r.Produce.P99.Round(time.Microsecond),
		r.Produce.BrokerCPU.Seconds(), r.Produce.ClientCPU.Seconds(), r.Produce.otherCores(),
		r.Produce.Wire.Requests, r.Produce.Wire.recordsPerBatch(),
		r.Consume.recPerSec(), r.Consume.BrokerCPU.Seconds(), mib(r.Mem.RSS))
	return r, nil
}

// runCapacity runs the capacity load generator against a fresh broker,
// then checks that every partition's end offset equals the records
// acknowledged to it.
func (b *bench) runCapacity(ctx context.Context, kind string, sc capacityScenario, run int) (capacityResult, error) {
	var res capacityResult
	err := b.withBroker(ctx, kind, fmt.Sprintf("%s-run%d", sc.slug(), run), sc.Partitions, func(bp *brokerProc) error {
		pctx, cancel := b.phase(ctx)
		defer cancel()
		g, err := newLoadGen(pctx, bp.ep, sc, b.cfg.Producers, b.cfg.InFlight, b.cfg.BatchRecords, codecs[b.cfg.Compression])
		if err != nil {
			return err
		}
		defer g.close()
		if err := g.warmup(pctx); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		if res, err = g.run(pctx, sc.Records, bp.Pid()); err != nil {
			return err
		}
		return checkEndOffsets(pctx, bp.ep, g.counts.snapshot())
	})
	if err != nil {
		return res, err
	}
	logf(b.logw, "run %d capacity %-12s %-9s %8.0f rec/s %6.0f req/s p50 %-8v p99 %-8v cpu %4.1fs (%.2f µs/rec) client %4.1fs others %.1f cores",
		run, sc, kind, res.recPerSec(), res.reqPerSec(), res.P50.Round(time.Microsecond), res.P99.Round(time.Microsecond),
		res.BrokerCPU.Seconds(), res.BrokerCPU.Seconds()*1e6/float64(res.Records), res.ClientCPU.Seconds(), res.otherCores())
	return res, nil
}

// runLatency offers a fixed load of 100 B records to one partition with the
// producer's linger set as lv says.
func (b *bench) runLatency(ctx context.Context, kind string, run int, lv lingerVariant) (latencyResult, error) {
	var res latencyResult
	sc := scenario{ValueBytes: 100, Partitions: 1}
	err := b.withBroker(ctx, kind, fmt.Sprintf("latency-run%d", run), 1, func(bp *brokerProc) error {
		pr, err := newBenchProducer(bp.ep, sc, autoBuffer(sc.ValueBytes, sc.Partitions), lv.opts...)
		if err != nil {
			return err
		}
		defer pr.close()
		pctx, cancel := b.phase(ctx)
		defer cancel()
		if err := pr.warmup(pctx); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		if res, err = pr.produceAtRate(pctx, b.cfg.LatencyRate, b.cfg.LatencyDuration, bp.Pid()); err != nil {
			return err
		}
		return checkEndOffsets(pctx, bp.ep, pr.counts.snapshot())
	})
	if err != nil {
		return res, err
	}
	logf(b.logw, "run %d latency      %-5s linger %s at %.0f rec/s: p50 %v p99 %v p99.9 %v max %v",
		run, kind, lv.Name, res.Achieved, res.P50.Round(time.Microsecond), res.P99.Round(time.Microsecond),
		res.P999.Round(time.Microsecond), res.Max.Round(time.Microsecond))
	return res, nil
}

// memoryCheckpoints returns the record counts after which the memory run
// samples the broker: a tenth, half, and all of n.
func memoryCheckpoints(n int) []int {
	cps := []int{}
	for _, c := range []int{n / 10, n / 2, n} {
		if c > 0 && (len(cps) == 0 || c > cps[len(cps)-1]) {
			cps = append(cps, c)
		}
	}
	return cps
}

// runMemory produces RSSRecords 100 B records into 8 partitions, sampling
// the broker's memory when the topic is empty, at each checkpoint (after
// flushing the producer) and after consuming everything from offset 0.
func (b *bench) runMemory(ctx context.Context, kind string) (memoryRun, error) {
	r := memoryRun{Kind: kind}
	sc := scenario{ValueBytes: 100, Partitions: 8}
	err := b.withBroker(ctx, kind, "memory", sc.Partitions, func(bp *brokerProc) error {
		sample := func(label string, records int) error {
			m, err := procstat.ReadMem(bp.Pid())
			if err != nil {
				return err
			}
			s := memorySample{Label: label, Records: records, Mem: m, DiskByte: bp.diskBytes()}
			r.Samples = append(r.Samples, s)
			logf(b.logw, "memory %-5s %-30s rss %s (anon %s, file %s) hwm %s, data %s",
				kind, label, mib(m.RSS), mib(m.Anon), mib(m.File), mib(m.HWM), mib(s.DiskByte))
			return nil
		}
		if err := sample("empty topic", 0); err != nil {
			return err
		}
		pr, err := newBenchProducer(bp.ep, sc, autoBuffer(sc.ValueBytes, sc.Partitions))
		if err != nil {
			return err
		}
		defer pr.close()
		pctx, cancel := b.phase(ctx)
		defer cancel()
		if err := pr.warmup(pctx); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		done := 0
		for _, cp := range memoryCheckpoints(b.cfg.RSSRecords) {
			res, err := pr.produceFull(pctx, cp-done, bp.Pid())
			if err != nil {
				return err
			}
			r.Produce.Records += res.Records
			r.Produce.Elapsed += res.Elapsed
			r.Produce.BrokerCPU += res.BrokerCPU
			r.Produce.ClientCPU += res.ClientCPU
			r.Produce.OtherCPU += res.OtherCPU
			r.Produce.Wire.Requests += res.Wire.Requests
			r.Produce.Wire.Batches += res.Wire.Batches
			r.Produce.Wire.BatchRecords += res.Wire.BatchRecords
			r.Produce.Wall += res.Wall
			done = cp
			if err := sample(fmt.Sprintf("after %s records", commas(cp)), cp); err != nil {
				return err
			}
		}
		want := pr.counts.snapshot()
		if err := checkEndOffsets(pctx, bp.ep, want); err != nil {
			return err
		}
		cctx, cancel := b.phase(ctx)
		defer cancel()
		if r.Consume, err = consumeAll(cctx, bp.ep, want, sc.ValueBytes, bp.Pid()); err != nil {
			return err
		}
		return sample("after consuming all", done)
	})
	if err != nil {
		return r, err
	}
	return r, nil
}
