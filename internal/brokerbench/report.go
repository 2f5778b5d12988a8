package brokerbench

import (
	"fmt"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/factorywire/factorywire/internal/benchkit"
)

// renderReport renders everything b measured as markdown: the setting,
// median tables with the ratios of ours to each reference (kfake,
// kafka-fsync, kafka), the aims, and every single run.
func renderReport(b *bench) string {
	var w strings.Builder
	m := b.machine
	others := slices.DeleteFunc(slices.Clone(b.cfg.kinds()), func(k string) bool { return k == kindOurs || k == kindOursSASLSSL })
	if b.secureRun() {
		others = append(others, "itself over TLS and SCRAM")
	}
	fmt.Fprintf(&w, "# brokerbench: factorywire broker vs %s\n\n", strings.Join(others, ", "))
	fmt.Fprintf(&w, "- date: %s, took %v\n", b.started.UTC().Format("2006-01-02 15:04 MST"), time.Since(b.started).Round(time.Second))
	fmt.Fprintf(&w, "- command: `%s`\n", b.cfg.CommandLine)
	if m.Source != "" {
		fmt.Fprintf(&w, "- broker source: %s\n", m.Source)
	}
	fmt.Fprintf(&w, "- machine: %d × %s, %s RAM, Linux %s, %s\n", m.CPUs, m.Model, m.MemTotal, m.Kernel, m.GoVersion)
	if m.Java != "" {
		fmt.Fprintf(&w, "- java: %s\n", m.Java)
	}
	fmt.Fprintf(&w, "- data dirs on %s; append+fsync 4 KiB p50 %s p99 %s, 1 MiB p50 %s p99 %s\n",
		m.Disk, ms(m.Fsync4K[0]), ms(m.Fsync4K[1]), ms(m.Fsync1M[0]), ms(m.Fsync1M[1]))
	fmt.Fprintf(&w, "- load average (1, 5, 15 min; CPU pressure over 60 s / 300 s): %s at start, %s at end\n", m.LoadStart, m.LoadEnd)
	fmt.Fprintf(&w, "- brokers, each in its own child process, a fresh one with a fresh data dir per run: ours (flush always: ack after fsync, one PLAINTEXT listener)")
	if slices.Contains(b.cfg.kinds(), kindOursSASLSSL) {
		fmt.Fprintf(&w, ", %s (the same broker and config with one SASL_SSL listener instead: a server certificate for 127.0.0.1 (ECDSA P-256) from a CA made for the bench run, session %s; SCRAM-SHA-512 only, user %q bootstrapped from a password file; %s)",
			kindOursSASLSSL, orUnknown(b.tlsSession), benchUser, secureAuthorization)
	}
	if slices.Contains(b.cfg.kinds(), kindKfake) {
		fmt.Fprintf(&w, ", kfake (NumBrokers(1), DataDir, SyncWrites: fsync per batch)")
	}
	if slices.ContainsFunc(b.cfg.kinds(), isKafka) {
		fmt.Fprintf(&w, ", Apache Kafka %s as one KRaft node (broker and controller) in its own java process with its start scripts' JVM options (-Xms%s -Xmx%s %s), Kafka's default threads: kafka-fsync with log.flush.interval.messages=1 and topic flush.messages=1 (fsync before ack), kafka as shipped (no fsync: page cache only)",
			b.cfg.Kafka.Version(), kafkaHeap, kafkaHeap, strings.Join(kafkaJVMFlags, " "))
		if b.cfg.JVMWarmup > 0 {
			fmt.Fprintf(&w, "; each fresh Kafka first gets %v of untimed produce load on a topic of its own, then consumed, to warm its JIT (-jvm-warmup)", b.cfg.JVMWarmup)
		} else {
			fmt.Fprintf(&w, "; no JIT warm-up (-jvm-warmup 0): each fresh Kafka compiles its hot paths during the timed phases")
		}
	}
	fmt.Fprintf(&w, "\n")
	fmt.Fprintf(&w, "- client: franz-go %s, one producer (acks=all, idempotent, default linger, batches ≤ 1 MiB, compression %s, %d keys spread by murmur2), one consumer (ConsumePartitions from offset 0)",
		moduleVersion("github.com/twmb/franz-go"), b.cfg.Compression, numKeys)
	if b.secureRun() {
		fmt.Fprintf(&w, "; against %s every client connects through kafkaclient.Config.Opts as the gateway and the sink do (TLS verifying the bench CA, SCRAM-SHA-512 once per connection)", kindOursSASLSSL)
	}
	fmt.Fprintln(&w)
	if b.cfg.Producers > 0 {
		fmt.Fprintf(&w, "- capacity load: %d producers (a franz-go client and connection each), %d raw Produce requests (acks=-1) in flight per producer, each one pre-encoded batch of %d records (compression %s)\n",
			b.cfg.Producers, b.cfg.InFlight, b.cfg.BatchRecords, b.cfg.Compression)
	}
	fmt.Fprintf(&w, "- %d run(s) per scenario per broker, brokers rotating which goes first; tables show medians, \"ours/kfake\" (and ours/kafka-fsync, ours/kafka, %s/ours) is the ratio of the medians\n", b.cfg.Runs, kindOursSASLSSL)
	fmt.Fprintf(&w, "- MB/s counts value bytes (10⁶ bytes); CPU is the broker process's user+system time during the phase\n\n")

	if len(b.throughput) > 0 {
		renderProduce(&w, b)
		renderConsume(&w, b)
	}
	if len(b.capacity) > 0 {
		renderCapacity(&w, b)
	}
	if len(b.latency) > 0 {
		renderLatency(&w, b)
	}
	if len(b.memory) > 0 {
		renderMemory(&w, b)
	}
	if b.secureRun() {
		renderSecurity(&w, b)
	}
	renderAims(&w, b)
	if len(b.throughput) > 0 || len(b.capacity) > 0 {
		renderRuns(&w, b)
	}
	benchkit.WriteFailures(&w, b.failures)
	return w.String()
}

// runsOf returns the throughput runs of one broker and scenario.
func runsOf(b *bench, kind string, sc scenario) []throughputRun {
	var rs []throughputRun
	for _, r := range b.throughput {
		if r.Kind == kind && r.Scenario == sc {
			rs = append(rs, r)
		}
	}
	return rs
}

// quietRuns returns the runs whose phase had at most cfg.QuietCores of other
// load and a label "used/all" for the table. When no run was that quiet, or
// the filter is off, it returns every run (labelled "noisy" in the first
// case).
func quietRuns[T any](b *bench, rs []T, phase func(T) phaseCPU) ([]T, string) {
	if b.cfg.QuietCores <= 0 {
		return rs, fmt.Sprintf("%d", len(rs))
	}
	var quiet []T
	for _, r := range rs {
		if phase(r).otherCores() <= b.cfg.QuietCores {
			quiet = append(quiet, r)
		}
	}
	if len(quiet) == 0 {
		return rs, fmt.Sprintf("%d/%d noisy", len(rs), len(rs))
	}
	return quiet, fmt.Sprintf("%d/%d", len(quiet), len(rs))
}

// quietProduce returns the produce runs of one broker and scenario that the
// medians use, and their label.
func quietProduce(b *bench, kind string, sc scenario) ([]throughputRun, string) {
	return quietRuns(b, runsOf(b, kind, sc), func(r throughputRun) phaseCPU { return r.Produce.phaseCPU })
}

// produceMedians are one broker's median produce figures in one scenario.
type produceMedians struct {
	n                        int
	recs, mbs, p50, p99, cpu float64
	cpuPerRec                float64 // µs
	clientPerRec             float64 // µs
}

func medianProduce(rs []throughputRun) produceMedians {
	return produceMedians{
		n:    len(rs),
		recs: benchkit.MedianOf(rs, func(r throughputRun) float64 { return r.Produce.recPerSec() }),
		mbs: benchkit.MedianOf(rs, func(r throughputRun) float64 {
			return r.Produce.recPerSec() * float64(r.Scenario.ValueBytes) / 1e6
		}),
		p50: benchkit.MedianOf(rs, func(r throughputRun) float64 { return r.Produce.P50.Seconds() * 1e3 }),
		p99: benchkit.MedianOf(rs, func(r throughputRun) float64 { return r.Produce.P99.Seconds() * 1e3 }),
		cpu: benchkit.MedianOf(rs, func(r throughputRun) float64 { return r.Produce.BrokerCPU.Seconds() }),
		cpuPerRec: benchkit.MedianOf(rs, func(r throughputRun) float64 {
			return r.Produce.BrokerCPU.Seconds() * 1e6 / float64(r.Produce.Records)
		}),
		clientPerRec: benchkit.MedianOf(rs, func(r throughputRun) float64 {
			return r.Produce.ClientCPU.Seconds() * 1e6 / float64(r.Produce.Records)
		}),
	}
}

func renderProduce(w *strings.Builder, b *bench) {
	fmt.Fprintf(w, "## Produce, fsync before ack\n\n")
	fmt.Fprintf(w, "As fast as one producer goes. Ack latency is Produce call to promise (every %dth record) under that full load,\n", latencySampleEvery)
	fmt.Fprintf(w, "so it is mostly time spent in the producer's buffer (MaxBufferedRecords in the last column). Client CPU is\n")
	fmt.Fprintf(w, "the producer's: it shares the machine's cores with the broker.\n%s\n\n", runsNote(b))
	fmt.Fprintf(w, "| scenario | broker | runs | records | rec/s | MB/s | ack p50 ms | ack p99 ms | broker CPU s | CPU µs/rec | client CPU µs/rec | buffer |\n")
	fmt.Fprintf(w, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, sc := range b.scenarios() {
		med := map[string]produceMedians{}
		for _, kind := range b.cfg.throughputKinds() {
			rs, used := quietProduce(b, kind, sc)
			if len(rs) == 0 {
				continue
			}
			m := medianProduce(rs)
			med[kind] = m
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %.1f | %.1f | %.1f | %.2f | %.2f | %.2f | %s |\n",
				sc, kind, used, commas(sc.Records), commas(int(m.recs)), m.mbs, m.p50, m.p99, m.cpu, m.cpuPerRec, m.clientPerRec, commas(rs[0].Buffer))
		}
		for _, c := range comparisons() {
			o, okO := med[c.Num]
			if k, ok := med[c.Den]; okO && ok {
				fmt.Fprintf(w, "| %s | **%s/%s** | | | **%s** | %s | %s | **%s** | %s | %s | %s | |\n",
					sc, c.Num, c.Den, ratio(o.recs, k.recs), ratio(o.mbs, k.mbs), ratio(o.p50, k.p50), ratio(o.p99, k.p99), ratio(o.cpu, k.cpu), ratio(o.cpuPerRec, k.cpuPerRec), ratio(o.clientPerRec, k.clientPerRec))
			}
		}
	}
	fmt.Fprintf(w, "\nFor rec/s and MB/s above 1× is better; for latency and CPU below 1× is better.")
	if b.cfg.Ceiling {
		fmt.Fprintf(w, " blackhole is kfake with BlackholeProduce: it\n")
		fmt.Fprintf(w, "acknowledges without storing or fsyncing anything, so its rate is the ceiling of this producer on this machine.")
	}
	fmt.Fprintf(w, "\n\n")
}

// capacityOf returns the capacity runs of one broker and scenario that the
// medians use, and their label.
func capacityOf(b *bench, kind string, sc capacityScenario) ([]capacityRun, string) {
	var rs []capacityRun
	for _, r := range b.capacity {
		if r.Kind == kind && r.Scenario == sc {
			rs = append(rs, r)
		}
	}
	return quietRuns(b, rs, func(r capacityRun) phaseCPU { return r.Result.phaseCPU })
}

// capacityMedians are one broker's median figures in one capacity scenario.
type capacityMedians struct {
	recs, mbs, reqs, p50, p99, cpu float64
	cpuPerRec, clientPerRec        float64 // µs
}

func medianCapacity(rs []capacityRun) capacityMedians {
	return capacityMedians{
		recs: benchkit.MedianOf(rs, func(r capacityRun) float64 { return r.Result.recPerSec() }),
		mbs: benchkit.MedianOf(rs, func(r capacityRun) float64 {
			return r.Result.recPerSec() * float64(r.Scenario.ValueBytes) / 1e6
		}),
		reqs: benchkit.MedianOf(rs, func(r capacityRun) float64 { return r.Result.reqPerSec() }),
		p50:  benchkit.MedianOf(rs, func(r capacityRun) float64 { return r.Result.P50.Seconds() * 1e3 }),
		p99:  benchkit.MedianOf(rs, func(r capacityRun) float64 { return r.Result.P99.Seconds() * 1e3 }),
		cpu:  benchkit.MedianOf(rs, func(r capacityRun) float64 { return r.Result.BrokerCPU.Seconds() }),
		cpuPerRec: benchkit.MedianOf(rs, func(r capacityRun) float64 {
			return r.Result.BrokerCPU.Seconds() * 1e6 / float64(r.Result.Records)
		}),
		clientPerRec: benchkit.MedianOf(rs, func(r capacityRun) float64 {
			return r.Result.ClientCPU.Seconds() * 1e6 / float64(r.Result.Records)
		}),
	}
}

func renderCapacity(w *strings.Builder, b *bench) {
	fmt.Fprintf(w, "## Produce capacity, %d producers, fsync before ack\n\n", b.cfg.Producers)
	fmt.Fprintf(w, "What the broker absorbs when many producers write at once, as many edge gateways do: %d producers, each its own\n", b.cfg.Producers)
	fmt.Fprintf(w, "client and connection, send raw Produce requests (acks=-1) of one pre-encoded %d-record batch each, %d in flight per\n", b.cfg.BatchRecords, b.cfg.InFlight)
	fmt.Fprintf(w, "producer; producer i writes to partition i mod partitions. The batches are encoded once, so the client's CPU per\n")
	fmt.Fprintf(w, "record is small and the broker sets the pace. Ack latency is per request, from sending it to its response.\n%s\n\n", runsNote(b))
	fmt.Fprintf(w, "| scenario | broker | runs | records | rec/s | MB/s | requests/s | ack p50 ms | ack p99 ms | broker CPU s | CPU µs/rec | client CPU µs/rec |\n")
	fmt.Fprintf(w, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, sc := range b.capacityScenarios() {
		med := map[string]capacityMedians{}
		for _, kind := range b.cfg.throughputKinds() {
			rs, used := capacityOf(b, kind, sc)
			if len(rs) == 0 {
				continue
			}
			m := medianCapacity(rs)
			med[kind] = m
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %.1f | %s | %.1f | %.1f | %.2f | %.2f | %.2f |\n",
				sc, kind, used, commas(rs[0].Result.Records), commas(int(m.recs)), m.mbs, commas(int(m.reqs)), m.p50, m.p99, m.cpu, m.cpuPerRec, m.clientPerRec)
		}
		for _, c := range comparisons() {
			o, okO := med[c.Num]
			if k, ok := med[c.Den]; okO && ok {
				fmt.Fprintf(w, "| %s | **%s/%s** | | | **%s** | %s | %s | %s | **%s** | %s | %s | %s |\n",
					sc, c.Num, c.Den, ratio(o.recs, k.recs), ratio(o.mbs, k.mbs), ratio(o.reqs, k.reqs), ratio(o.p50, k.p50), ratio(o.p99, k.p99), ratio(o.cpu, k.cpu), ratio(o.cpuPerRec, k.cpuPerRec), ratio(o.clientPerRec, k.clientPerRec))
			}
		}
	}
	fmt.Fprintf(w, "\nFor rec/s and MB/s above 1× is better; for latency and CPU below 1× is better.")
	if b.cfg.Ceiling {
		fmt.Fprintf(w, " blackhole (kfake with BlackholeProduce)\n")
		fmt.Fprintf(w, "stores and fsyncs nothing: its rate is the ceiling of this load generator on this machine.")
	}
	fmt.Fprintf(w, "\n\n")
}

func renderConsume(w *strings.Builder, b *bench) {
	fmt.Fprintf(w, "## Consume from offset 0\n\n")
	fmt.Fprintf(w, "One consumer reads everything just produced (the timed records and %d warm-up records).\n", warmupRecords)
	fmt.Fprintf(w, "RSS is the broker's VmRSS after both phases.")
	if slices.ContainsFunc(b.cfg.kinds(), isKafka) {
		fmt.Fprintf(w, " Data on disk is the data dir's files' size; for Apache Kafka the space allocated to the topic's partition folders.")
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%s\n\n", runsNote(b))
	fmt.Fprintf(w, "| scenario | broker | runs | rec/s | MB/s | broker CPU s | CPU µs/rec | broker RSS MiB | broker peak RSS MiB | data on disk MiB |\n")
	fmt.Fprintf(w, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, sc := range b.scenarios() {
		type meds struct{ recs, mbs, cpu, cpuPerRec, rss, hwm, disk float64 }
		med := map[string]meds{}
		for _, kind := range b.cfg.kinds() {
			rs, used := quietRuns(b, runsOf(b, kind, sc), func(r throughputRun) phaseCPU { return r.Consume.phaseCPU })
			if len(rs) == 0 {
				continue
			}
			m := meds{
				recs: benchkit.MedianOf(rs, func(r throughputRun) float64 { return r.Consume.recPerSec() }),
				mbs: benchkit.MedianOf(rs, func(r throughputRun) float64 {
					return r.Consume.recPerSec() * float64(r.Scenario.ValueBytes) / 1e6
				}),
				cpu: benchkit.MedianOf(rs, func(r throughputRun) float64 { return r.Consume.BrokerCPU.Seconds() }),
				cpuPerRec: benchkit.MedianOf(rs, func(r throughputRun) float64 {
					return r.Consume.BrokerCPU.Seconds() * 1e6 / float64(r.Consume.Records)
				}),
				rss:  benchkit.MedianOf(rs, func(r throughputRun) float64 { return float64(r.Mem.RSS) / (1 << 20) }),
				hwm:  benchkit.MedianOf(rs, func(r throughputRun) float64 { return float64(r.Mem.HWM) / (1 << 20) }),
				disk: benchkit.MedianOf(rs, func(r throughputRun) float64 { return float64(r.DiskByte) / (1 << 20) }),
			}
			med[kind] = m
			fmt.Fprintf(w, "| %s | %s | %s | %s | %.1f | %.2f | %.2f | %.0f | %.0f | %.0f |\n",
				sc, kind, used, commas(int(m.recs)), m.mbs, m.cpu, m.cpuPerRec, m.rss, m.hwm, m.disk)
		}
		for _, c := range comparisons() {
			o, okO := med[c.Num]
			if k, ok := med[c.Den]; okO && ok {
				fmt.Fprintf(w, "| %s | **%s/%s** | | **%s** | %s | %s | %s | **%s** | %s | %s |\n",
					sc, c.Num, c.Den, ratio(o.recs, k.recs), ratio(o.mbs, k.mbs), ratio(o.cpu, k.cpu), ratio(o.cpuPerRec, k.cpuPerRec),
					ratio(o.rss, k.rss), ratio(o.hwm, k.hwm), ratio(o.disk, k.disk))
			}
		}
	}
	fmt.Fprintln(w)
}

func renderLatency(w *strings.Builder, b *bench) {
	fmt.Fprintf(w, "## Ack latency at a fixed load\n\n")
	fmt.Fprintf(w, "%s records/s of 100 B to 1 partition for %v; latency runs from when a record was due to its ack, so a stalled\n",
		commas(b.cfg.LatencyRate), b.cfg.LatencyDuration)
	fmt.Fprintf(w, "sender is not hidden. With the producer's default linger (10 ms) it is what a gateway with default settings sees;\n")
	fmt.Fprintf(w, "with linger 0 what remains is mostly the broker's part (receive, append, fsync, answer).\n%s\n\n", runsNote(b))
	fmt.Fprintf(w, "| linger | broker | runs | achieved rec/s | p50 ms | p99 ms | p99.9 ms | max ms | broker CPU s |\n")
	fmt.Fprintf(w, "|---|---|--:|--:|--:|--:|--:|--:|--:|\n")
	type meds struct{ ach, p50, p99, p999, max, cpu float64 }
	for _, lv := range latencyLingers {
		med := map[string]meds{}
		for _, kind := range b.cfg.kinds() {
			var all []latencyRun
			for _, r := range b.latency {
				if r.Kind == kind && r.Linger == lv.Name {
					all = append(all, r)
				}
			}
			if len(all) == 0 {
				continue
			}
			rs, used := quietRuns(b, all, func(r latencyRun) phaseCPU { return r.Result.phaseCPU })
			msOf := func(f func(latencyResult) time.Duration) float64 {
				return benchkit.MedianOf(rs, func(r latencyRun) float64 { return f(r.Result).Seconds() * 1e3 })
			}
			m := meds{
				ach:  benchkit.MedianOf(rs, func(r latencyRun) float64 { return r.Result.Achieved }),
				p50:  msOf(func(r latencyResult) time.Duration { return r.P50 }),
				p99:  msOf(func(r latencyResult) time.Duration { return r.P99 }),
				p999: msOf(func(r latencyResult) time.Duration { return r.P999 }),
				max:  msOf(func(r latencyResult) time.Duration { return r.Max }),
				cpu:  benchkit.MedianOf(rs, func(r latencyRun) float64 { return r.Result.BrokerCPU.Seconds() }),
			}
			med[kind] = m
			fmt.Fprintf(w, "| %s | %s | %s | %s | %.2f | %.2f | %.2f | %.2f | %.2f |\n", lv.Name, kind, used, commas(int(m.ach)), m.p50, m.p99, m.p999, m.max, m.cpu)
		}
		for _, c := range comparisons() {
			o, okO := med[c.Num]
			if k, ok := med[c.Den]; okO && ok {
				fmt.Fprintf(w, "| %s | **%s/%s** | | | **%s** | **%s** | %s | %s | %s |\n",
					lv.Name, c.Num, c.Den, ratio(o.p50, k.p50), ratio(o.p99, k.p99), ratio(o.p999, k.p999), ratio(o.max, k.max), ratio(o.cpu, k.cpu))
			}
		}
	}
	fmt.Fprintln(w)
}

func renderMemory(w *strings.Builder, b *bench) {
	fmt.Fprintf(w, "## Broker memory as retained data grows\n\n")
	fmt.Fprintf(w, "%s records of 100 B into 8 partitions of one fresh broker each; the producer is flushed before each sample.\n", commas(b.cfg.RSSRecords))
	fmt.Fprintf(w, "RssFile counts resident file-backed pages (the binary, mmapped files), not the page cache of files read with read/pread.\n")
	if slices.ContainsFunc(b.cfg.kinds(), isKafka) {
		fmt.Fprintf(w, "For Apache Kafka, data on disk is the space allocated to the topic's partition folders (it preallocates each active\n")
		fmt.Fprintf(w, "segment's indexes as 10 MiB sparse files), and its empty-topic sample comes after its JIT warm-up, if any, on a topic of its own.\n")
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "| broker | point | data on disk MiB | VmRSS MiB | RssAnon MiB | RssFile MiB | VmHWM MiB |\n")
	fmt.Fprintf(w, "|---|---|--:|--:|--:|--:|--:|\n")
	for _, r := range b.memory {
		for _, s := range r.Samples {
			fmt.Fprintf(w, "| %s | %s | %.0f | %.1f | %.1f | %.1f | %.1f |\n", r.Kind, s.Label,
				float64(s.DiskByte)/(1<<20), float64(s.Mem.RSS)/(1<<20), float64(s.Mem.Anon)/(1<<20),
				float64(s.Mem.File)/(1<<20), float64(s.Mem.HWM)/(1<<20))
		}
	}
	fmt.Fprintf(w, "\n| broker | produce rec/s | broker CPU s | consume rec/s |\n|---|--:|--:|--:|\n")
	for _, r := range b.memory {
		fmt.Fprintf(w, "| %s | %s | %.1f | %s |\n", r.Kind, commas(int(r.Produce.recPerSec())), r.Produce.BrokerCPU.Seconds(), commas(int(r.Consume.recPerSec())))
	}
	type pair struct{ num, den memoryRun }
	var pairs []pair
	for _, c := range comparisons() {
		num, okN := memoryOf(b, c.Num)
		den, okD := memoryOf(b, c.Den)
		if okN && okD {
			pairs = append(pairs, pair{num, den})
		}
	}
	if len(pairs) > 0 {
		fmt.Fprintf(w, "\nVmRSS ratios at the same point (ours over each reference's, %s over ours):\n\n| point |", kindOursSASLSSL)
		for _, p := range pairs {
			fmt.Fprintf(w, " %s/%s |", p.num.Kind, p.den.Kind)
		}
		fmt.Fprintf(w, "\n|---|%s\n", strings.Repeat("--:|", len(pairs)))
		for i, s := range pairs[0].num.Samples {
			fmt.Fprintf(w, "| %s |", s.Label)
			for _, p := range pairs {
				cell := "–"
				if i < len(p.num.Samples) && i < len(p.den.Samples) && p.num.Samples[i].Label == s.Label && p.den.Samples[i].Label == s.Label {
					cell = ratio(float64(p.num.Samples[i].Mem.RSS), float64(p.den.Samples[i].Mem.RSS))
				}
				fmt.Fprintf(w, " %s |", cell)
			}
			fmt.Fprintln(w)
		}
	}
	fmt.Fprintln(w)
}

// secureRun reports whether the run measured ours over TLS and SCRAM
// beside ours plain.
func (b *bench) secureRun() bool {
	kinds := b.cfg.kinds()
	return slices.Contains(kinds, kindOurs) && slices.Contains(kinds, kindOursSASLSSL)
}

// renderSecurity sums up what TLS and SCRAM cost ours: for every phase and
// scenario, the medians of ours plain and of kindOursSASLSSL, from the same
// runs as the tables above, and their ratio.
func renderSecurity(w *strings.Builder, b *bench) {
	fmt.Fprintf(w, "## TLS and SCRAM: %s against ours plain\n\n", kindOursSASLSSL)
	fmt.Fprintf(w, "The same broker and config, once behind a PLAINTEXT listener and once behind a SASL_SSL one (%s; SCRAM-SHA-512\n", orUnknown(b.tlsSession))
	fmt.Fprintf(w, "once per connection), run by run in the same bench run, which goes first alternating. Each cell is ours → %s\n", kindOursSASLSSL)
	fmt.Fprintf(w, "(%s/ours), medians of the runs the tables above use. For rec/s above 1× is better; for latency and CPU below 1×.\n", kindOursSASLSSL)
	fmt.Fprintf(w, "Client CPU is this process's (the clients': TLS costs them too), per record; it shares the machine's cores with the broker.\n\n")
	fmt.Fprintf(w, "| phase | scenario | rec/s | ack p99 ms | broker CPU µs/rec | client CPU µs/rec |\n")
	fmt.Fprintf(w, "|---|---|--:|--:|--:|--:|\n")
	row := func(phase, sc string, recs, p99, cpu, client [2]float64) {
		p99Cell := "–"
		if p99[0] > 0 || p99[1] > 0 {
			p99Cell = pairCell(p99, func(v float64) string { return fmt.Sprintf("%.1f", v) })
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", phase, sc,
			pairCell(recs, func(v float64) string { return commas(int(v)) }), p99Cell,
			pairCell(cpu, func(v float64) string { return fmt.Sprintf("%.2f", v) }),
			pairCell(client, func(v float64) string { return fmt.Sprintf("%.2f", v) }))
	}
	kinds := [2]string{kindOurs, kindOursSASLSSL}
	for _, sc := range b.scenarios() {
		var m [2]produceMedians
		ok := true
		for i, kind := range kinds {
			rs, _ := quietProduce(b, kind, sc)
			ok = ok && len(rs) > 0
			if ok {
				m[i] = medianProduce(rs)
			}
		}
		if ok {
			row("produce, 1 producer", sc.String(), [2]float64{m[0].recs, m[1].recs}, [2]float64{m[0].p99, m[1].p99},
				[2]float64{m[0].cpuPerRec, m[1].cpuPerRec}, [2]float64{m[0].clientPerRec, m[1].clientPerRec})
		}
	}
	for _, sc := range b.scenarios() {
		var recs, cpu, client [2]float64
		ok := true
		for i, kind := range kinds {
			rs, _ := quietRuns(b, runsOf(b, kind, sc), func(r throughputRun) phaseCPU { return r.Consume.phaseCPU })
			ok = ok && len(rs) > 0
			if !ok {
				break
			}
			recs[i] = benchkit.MedianOf(rs, func(r throughputRun) float64 { return r.Consume.recPerSec() })
			cpu[i] = benchkit.MedianOf(rs, func(r throughputRun) float64 { return perRec(r.Consume.BrokerCPU, r.Consume.Records) })
			client[i] = benchkit.MedianOf(rs, func(r throughputRun) float64 { return perRec(r.Consume.ClientCPU, r.Consume.Records) })
		}
		if ok {
			row("consume, 1 consumer", sc.String(), recs, [2]float64{}, cpu, client)
		}
	}
	for _, sc := range b.capacityScenarios() {
		var m [2]capacityMedians
		ok := true
		for i, kind := range kinds {
			rs, _ := capacityOf(b, kind, sc)
			ok = ok && len(rs) > 0
			if ok {
				m[i] = medianCapacity(rs)
			}
		}
		if ok {
			row(fmt.Sprintf("capacity, %d producers", b.cfg.Producers), sc.String(), [2]float64{m[0].recs, m[1].recs}, [2]float64{m[0].p99, m[1].p99},
				[2]float64{m[0].cpuPerRec, m[1].cpuPerRec}, [2]float64{m[0].clientPerRec, m[1].clientPerRec})
		}
	}
	for _, lv := range latencyLingers {
		var recs, p99, cpu, client [2]float64
		ok := true
		for i, kind := range kinds {
			var all []latencyRun
			for _, r := range b.latency {
				if r.Kind == kind && r.Linger == lv.Name {
					all = append(all, r)
				}
			}
			ok = ok && len(all) > 0
			if !ok {
				break
			}
			rs, _ := quietRuns(b, all, func(r latencyRun) phaseCPU { return r.Result.phaseCPU })
			recs[i] = benchkit.MedianOf(rs, func(r latencyRun) float64 { return r.Result.Achieved })
			p99[i] = benchkit.MedianOf(rs, func(r latencyRun) float64 { return r.Result.P99.Seconds() * 1e3 })
			cpu[i] = benchkit.MedianOf(rs, func(r latencyRun) float64 { return perRec(r.Result.BrokerCPU, r.Result.Records) })
			client[i] = benchkit.MedianOf(rs, func(r latencyRun) float64 { return perRec(r.Result.ClientCPU, r.Result.Records) })
		}
		if ok {
			row(fmt.Sprintf("%s rec/s offered, linger %s", commas(b.cfg.LatencyRate), lv.Name), "100 B × 1 p", recs, p99, cpu, client)
		}
	}
	plain, okP := memoryOf(b, kindOurs)
	secure, okS := memoryOf(b, kindOursSASLSSL)
	if okP && okS && len(plain.Samples) > 0 && len(secure.Samples) > 0 {
		lp, ls := plain.Samples[len(plain.Samples)-1], secure.Samples[len(secure.Samples)-1]
		fmt.Fprintf(w, "\nMemory run, broker VmRSS %s: %s MiB.\n", lp.Label,
			pairCell([2]float64{float64(lp.Mem.RSS) / (1 << 20), float64(ls.Mem.RSS) / (1 << 20)}, func(v float64) string { return fmt.Sprintf("%.0f", v) }))
	}
	fmt.Fprintln(w)
}

// pairCell formats ours plain's and the secure kind's figures and their
// ratio: "2,100,000 → 1,800,000 (0.86×)".
func pairCell(v [2]float64, format func(float64) string) string {
	return fmt.Sprintf("%s → %s (%s)", format(v[0]), format(v[1]), ratio(v[1], v[0]))
}

// perRec is d in microseconds per record.
func perRec(d time.Duration, records int) float64 {
	if records == 0 {
		return 0
	}
	return d.Seconds() * 1e6 / float64(records)
}

// orUnknown is s, or "(unknown)" when it is empty.
func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}

// memoryOf returns the memory run of one broker.
func memoryOf(b *bench, kind string) (memoryRun, bool) {
	for _, r := range b.memory {
		if r.Kind == kind {
			return r, true
		}
	}
	return memoryRun{}, false
}

// The aims the report states a verdict on.
const (
	// aimKfake is the first issue's aim: ours produces at least this
	// many times kfake's records/s at 100 B.
	aimKfake = 1.5
	// aimKafka is the second's: at 100 B with fsync before ack, at least
	// this many times Apache Kafka's (kafka-fsync) acknowledged
	// records/s, with a lower p99 ack latency ...
	aimKafka = 2.0
	// aimKafkaRSS ... and a resident set at most this share of Kafka's.
	aimKafkaRSS = 0.2
)

// verdict is "met" or "not met".
func verdict(met bool) string {
	if met {
		return "met"
	}
	return "not met"
}

// renderAims states the issues' aims against the medians: ours at least
// aimKfake × kfake's produce rate at 100 B; at 100 B with fsync before ack
// at least aimKafka × kafka-fsync's acknowledged records/s and a lower ack
// p99; RSS at most aimKafkaRSS × kafka-fsync's; memory that does not grow
// with retained data. Figures against kafka (no fsync) are given beside
// kafka-fsync's as context, with no aim.
func renderAims(w *strings.Builder, b *bench) {
	var lines []string
	add := func(format string, args ...any) { lines = append(lines, fmt.Sprintf(format, args...)) }
	// againstKafka is "; kafka (no fsync, no aim) <figure>: <ours/kafka>"
	// when kafka ran.
	againstKafka := func(ours, kafka float64, ok bool, unit func(float64) string) string {
		if !ok {
			return ""
		}
		return fmt.Sprintf("; kafka (no fsync, no aim) %s: %s", unit(kafka), ratio(ours, kafka))
	}
	recs := func(v float64) string { return commas(int(v)) + " rec/s" }
	ms1 := func(v float64) string { return fmt.Sprintf("%.1f ms", v) }
	ms2 := func(v float64) string { return fmt.Sprintf("%.2f ms", v) }
	for _, sc := range b.scenarios() {
		if sc.ValueBytes != 100 {
			continue
		}
		o, _ := quietProduce(b, kindOurs, sc)
		if len(o) == 0 {
			continue
		}
		om := medianProduce(o)
		if k, _ := quietProduce(b, kindKfake, sc); len(k) > 0 {
			km := medianProduce(k)
			r := om.recs / km.recs
			add("- produce %s: ours %s rec/s, kfake %s rec/s: **%.2f×** (aim ≥ %.1f×: %s)",
				sc, commas(int(om.recs)), commas(int(km.recs)), r, aimKfake, verdict(r >= aimKfake))
			if c, _ := quietProduce(b, kindBlackhole, sc); len(c) > 0 {
				ceil := medianProduce(c).recs
				add("  - ceiling (blackhole) %s rec/s: ours reaches %.0f%% of it, kfake %.0f%%; the most any broker could show here is %.2f× kfake",
					commas(int(ceil)), 100*om.recs/ceil, 100*km.recs/ceil, ceil/km.recs)
			}
		}
		if f, _ := quietProduce(b, kindKafkaFsync, sc); len(f) > 0 {
			fm := medianProduce(f)
			a, _ := quietProduce(b, kindKafka, sc)
			var am produceMedians
			if len(a) > 0 {
				am = medianProduce(a)
			}
			r := om.recs / fm.recs
			add("- produce %s, fsync before ack: ours %s rec/s, kafka-fsync %s rec/s: **%.2f×** (aim ≥ %.0f×: %s)%s",
				sc, commas(int(om.recs)), commas(int(fm.recs)), r, aimKafka, verdict(r >= aimKafka),
				againstKafka(om.recs, am.recs, len(a) > 0, recs))
			if c, _ := quietProduce(b, kindBlackhole, sc); len(c) > 0 {
				ceil := medianProduce(c).recs
				add("  - ceiling (blackhole) %s rec/s: kafka-fsync reaches %.0f%% of it; the most any broker could show here is %.2f× kafka-fsync",
					commas(int(ceil)), 100*fm.recs/ceil, ceil/fm.recs)
			}
			add("  - ack p99 under that load: ours %.1f ms, kafka-fsync %.1f ms: **%s** (aim lower: %s)%s",
				om.p99, fm.p99, ratio(om.p99, fm.p99), verdict(om.p99 < fm.p99),
				againstKafka(om.p99, am.p99, len(a) > 0, ms1))
		}
	}
	for _, sc := range b.capacityScenarios() {
		if sc.ValueBytes != 100 {
			continue
		}
		o, _ := capacityOf(b, kindOurs, sc)
		if len(o) == 0 {
			continue
		}
		om := medianCapacity(o)
		if k, _ := capacityOf(b, kindKfake, sc); len(k) > 0 {
			km := medianCapacity(k)
			r := om.recs / km.recs
			add("- produce capacity %s, %d producers: ours %s rec/s, kfake %s rec/s: **%.2f×** (aim ≥ %.1f×: %s)",
				sc, b.cfg.Producers, commas(int(om.recs)), commas(int(km.recs)), r, aimKfake, verdict(r >= aimKfake))
			if c, _ := capacityOf(b, kindBlackhole, sc); len(c) > 0 {
				ceil := medianCapacity(c).recs
				add("  - ceiling (blackhole) %s rec/s: ours reaches %.0f%% of it, kfake %.0f%%",
					commas(int(ceil)), 100*om.recs/ceil, 100*km.recs/ceil)
			}
		}
		if f, _ := capacityOf(b, kindKafkaFsync, sc); len(f) > 0 {
			fm := medianCapacity(f)
			a, _ := capacityOf(b, kindKafka, sc)
			var am capacityMedians
			if len(a) > 0 {
				am = medianCapacity(a)
			}
			r := om.recs / fm.recs
			add("- produce capacity %s, %d producers, fsync before ack: ours %s rec/s, kafka-fsync %s rec/s: **%.2f×** (aim ≥ %.0f×: %s)%s",
				sc, b.cfg.Producers, commas(int(om.recs)), commas(int(fm.recs)), r, aimKafka, verdict(r >= aimKafka),
				againstKafka(om.recs, am.recs, len(a) > 0, recs))
			add("  - ack p99 per request: ours %.1f ms, kafka-fsync %.1f ms: **%s** (aim lower: %s)%s",
				om.p99, fm.p99, ratio(om.p99, fm.p99), verdict(om.p99 < fm.p99),
				againstKafka(om.p99, am.p99, len(a) > 0, ms1))
		}
	}
	for _, lv := range latencyLingers {
		p99 := func(kind string) (float64, bool) {
			var all []latencyRun
			for _, r := range b.latency {
				if r.Kind == kind && r.Linger == lv.Name {
					all = append(all, r)
				}
			}
			if len(all) == 0 {
				return 0, false
			}
			rs, _ := quietRuns(b, all, func(r latencyRun) phaseCPU { return r.Result.phaseCPU })
			return benchkit.MedianOf(rs, func(r latencyRun) float64 { return r.Result.P99.Seconds() * 1e3 }), true
		}
		o, okO := p99(kindOurs)
		f, okF := p99(kindKafkaFsync)
		if !okO || !okF {
			continue
		}
		a, okA := p99(kindKafka)
		add("- ack p99 at %s rec/s (100 B × 1 p), linger %s: ours %.2f ms, kafka-fsync %.2f ms: **%s** (aim lower: %s)%s",
			commas(b.cfg.LatencyRate), lv.Name, o, f, ratio(o, f), verdict(o < f), againstKafka(o, a, okA, ms2))
	}
	if ours, ok := memoryOf(b, kindOurs); ok {
		if f, okF := memoryOf(b, kindKafkaFsync); okF {
			worst, at := 0.0, ""
			for i, s := range ours.Samples {
				if i < len(f.Samples) && f.Samples[i].Label == s.Label && f.Samples[i].Mem.RSS > 0 {
					if r := float64(s.Mem.RSS) / float64(f.Samples[i].Mem.RSS); r > worst {
						worst, at = r, s.Label
					}
				}
			}
			if at != "" {
				last, lastF := ours.Samples[len(ours.Samples)-1], f.Samples[len(f.Samples)-1]
				a, okA := memoryOf(b, kindKafka)
				kafkaNote := ""
				if okA && len(a.Samples) > 0 {
					kafkaNote = fmt.Sprintf("; kafka (no fsync, no aim) %.0f MiB", float64(a.Samples[len(a.Samples)-1].Mem.RSS)/(1<<20))
				}
				add("- memory, VmRSS: ours %.0f MiB, kafka-fsync %.0f MiB %s (%s)%s; the largest ratio over the %d sample points is **%.2f×**, %s (aim ≤ %.1f×: %s)",
					float64(last.Mem.RSS)/(1<<20), float64(lastF.Mem.RSS)/(1<<20), last.Label, ratio(float64(last.Mem.RSS), float64(lastF.Mem.RSS)), kafkaNote,
					len(ours.Samples), worst, at, aimKafkaRSS, verdict(worst <= aimKafkaRSS))
			}
		}
	}
	for _, r := range b.memory {
		var first, last *memorySample
		for i := range r.Samples {
			s := &r.Samples[i]
			if s.Records > 0 && strings.HasPrefix(s.Label, "after ") && s.Label != "after consuming all" {
				if first == nil {
					first = s
				}
				last = s
			}
		}
		if first == nil || last == first {
			continue
		}
		dData := float64(last.DiskByte-first.DiskByte) / (1 << 20)
		dRSS := float64(last.Mem.RSS-first.Mem.RSS) / (1 << 20)
		add("- memory, %s: VmRSS %.0f MiB after %s records, %.0f MiB after %s (%+.0f MiB while retained data grew by %.0f MiB)",
			r.Kind, float64(first.Mem.RSS)/(1<<20), commas(first.Records), float64(last.Mem.RSS)/(1<<20), commas(last.Records), dRSS, dData)
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintf(w, "## Aims\n\n%s\n\n", strings.Join(lines, "\n"))
}

func renderRuns(w *strings.Builder, b *bench) {
	fmt.Fprintf(w, "## Every run\n\n")
	fmt.Fprintf(w, "\"other load\" is the CPU every other process on the machine used during the phase, in cores (of %d): the noise.\n\n", b.machine.CPUs)
	fmt.Fprintf(w, "Requests and rec/batch are the producer's produce requests and mean records per batch, from kgo hooks.\n\n")
	fmt.Fprintf(w, "| run | scenario | broker | produce rec/s | ack p50 ms | ack p99 ms | broker CPU s | client CPU s | requests | rec/batch | other load | consume rec/s | other load | RSS MiB |\n")
	fmt.Fprintf(w, "|--:|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range b.throughput {
		consume, consumeOther := "–", "–"
		if r.Consume.Records > 0 {
			consume = commas(int(r.Consume.recPerSec()))
			consumeOther = fmt.Sprintf("%.2f", r.Consume.otherCores())
		}
		fmt.Fprintf(w, "| %d | %s | %s | %s | %.1f | %.1f | %.2f | %.2f | %s | %.0f | %.2f | %s | %s | %.0f |\n",
			r.Run, r.Scenario, r.Kind, commas(int(r.Produce.recPerSec())), r.Produce.P50.Seconds()*1e3, r.Produce.P99.Seconds()*1e3,
			r.Produce.BrokerCPU.Seconds(), r.Produce.ClientCPU.Seconds(), commas(int(r.Produce.Wire.Requests)), r.Produce.Wire.recordsPerBatch(),
			r.Produce.otherCores(), consume, consumeOther, float64(r.Mem.RSS)/(1<<20))
	}
	if len(b.capacity) > 0 {
		fmt.Fprintf(w, "\n| run | capacity scenario | broker | rec/s | requests/s | ack p50 ms | ack p99 ms | broker CPU s | client CPU s | other load |\n|--:|---|---|--:|--:|--:|--:|--:|--:|--:|\n")
		for _, r := range b.capacity {
			fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %.1f | %.1f | %.2f | %.2f | %.2f |\n", r.Run, r.Scenario, r.Kind,
				commas(int(r.Result.recPerSec())), commas(int(r.Result.reqPerSec())), r.Result.P50.Seconds()*1e3, r.Result.P99.Seconds()*1e3,
				r.Result.BrokerCPU.Seconds(), r.Result.ClientCPU.Seconds(), r.Result.otherCores())
		}
	}
	if len(b.latency) > 0 {
		fmt.Fprintf(w, "\n| run | latency run | broker | achieved rec/s | p50 ms | p99 ms | p99.9 ms | max ms | other load |\n|--:|---|---|--:|--:|--:|--:|--:|--:|\n")
		for _, r := range b.latency {
			fmt.Fprintf(w, "| %d | %s rec/s, linger %s | %s | %s | %.2f | %.2f | %.2f | %.2f | %.2f |\n", r.Run, commas(r.Result.Offered), r.Linger, r.Kind,
				commas(int(r.Result.Achieved)), r.Result.P50.Seconds()*1e3, r.Result.P99.Seconds()*1e3,
				r.Result.P999.Seconds()*1e3, r.Result.Max.Seconds()*1e3, r.Result.otherCores())
		}
	}
	fmt.Fprintln(w)
}

// runsNote explains the runs column.
func runsNote(b *bench) string {
	if b.cfg.QuietCores <= 0 {
		return "Medians over every run."
	}
	return fmt.Sprintf("\"runs\" is how many runs the median uses: those with at most %.2f cores of other load\n(\"noisy\": no run was that quiet, so all are used).", b.cfg.QuietCores)
}

// ratio formats a/b as "1.62×", or "–" when b is zero.
func ratio(a, b float64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

// ms formats a duration in milliseconds with two decimals.
func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", d.Seconds()*1e3) }

// mib formats bytes as MiB.
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// commas formats n with thousands separators: 1,000,000.
func commas(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

// moduleVersion returns the version of a dependency built into this
// binary, or "(unknown)".
func moduleVersion(path string) string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == path {
				return d.Version
			}
		}
	}
	return "(unknown)"
}
