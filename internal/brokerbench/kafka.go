package brokerbench

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/factorywire/factorywire/internal/kafkatest"
)

// Apache Kafka runs as one KRaft node (broker and controller in one java
// process) started by internal/kafkatest, with the JVM settings of Kafka's
// own start scripts and Kafka's defaults wherever kafkatest tunes for
// tests.

// kafkaHeap is the JVM's -Xms and -Xmx: kafka-server-start.sh's default
// KAFKA_HEAP_OPTS ("-Xmx1G -Xms1G").
const kafkaHeap = "1g"

// kafkaJVMFlags are kafka-run-class.sh's default
// KAFKA_JVM_PERFORMANCE_OPTS (G1, 20 ms pause goal), without the C1-only
// and serial-GC flags kafkatest starts tests with; kafkatest adds
// -Djava.awt.headless=true.
var kafkaJVMFlags = []string{
	"-server",
	"-XX:+UseG1GC",
	"-XX:MaxGCPauseMillis=20",
	"-XX:InitiatingHeapOccupancyPercent=35",
	"-XX:+ExplicitGCInvokesConcurrent",
	"-XX:MaxInlineLevel=15",
}

// kafkaDefaults put back Kafka 4.1's defaults for every server property
// kafkatest sets smaller for tests on two cores (threads, the cleaner's
// buffer, internal topics' partitions, session timeouts). What kafkatest
// sets besides them is the node's identity, listeners and replication
// factors of 1, which a single node needs.
var kafkaDefaults = map[string]string{
	"num.network.threads":                          "3",
	"num.io.threads":                               "8",
	"num.replica.fetchers":                         "1",
	"background.threads":                           "10",
	"log.cleaner.threads":                          "1",
	"log.cleaner.dedupe.buffer.size":               "134217728",
	"group.initial.rebalance.delay.ms":             "3000",
	"offsets.topic.num.partitions":                 "50",
	"transaction.state.log.num.partitions":         "50",
	"share.coordinator.state.topic.num.partitions": "50",
	"broker.session.timeout.ms":                    "9000",
	"broker.heartbeat.interval.ms":                 "2000",
}

// kafkaProps are the server properties of a Kafka broker of the given
// kind: kafka-fsync flushes (fsyncs) every partition after each append,
// before the produce is acknowledged; kafka leaves flushing to the OS.
func kafkaProps(kind string) map[string]string {
	props := maps.Clone(kafkaDefaults)
	if kind == kindKafkaFsync {
		props["log.flush.interval.messages"] = "1"
	}
	return props
}

// kafkaTopicConfigs are the configs benchTopic is created with on a broker
// of the given kind: flush.messages=1 on kafka-fsync, as its broker
// default already says.
func kafkaTopicConfigs(kind string) map[string]*string {
	if kind != kindKafkaFsync {
		return nil
	}
	one := "1"
	return map[string]*string{"flush.messages": &one}
}

// startKafka formats a fresh Kafka node in dir, starts it and waits until
// it serves.
func startKafka(ctx context.Context, inst kafkatest.Install, kind, dir string) (*brokerProc, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	c, err := kafkatest.Run(ctx, inst, dir, kafkatest.Options{
		Heap:        kafkaHeap,
		InitialHeap: kafkaHeap,
		JVMFlags:    kafkaJVMFlags,
		Props:       kafkaProps(kind),
	})
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", kind, err)
	}
	const id = 1
	logDir := c.LogDir(id)
	return &brokerProc{kind: kind, Addr: c.Addr(id), dir: logDir, pid: c.Pid(id), stop: c.Close,
		disk: func() int64 { return topicBlocks(logDir, benchTopic) }}, nil
}

// topicBlocks is the disk space allocated to topic's partition folders
// (<topic>-<partition>) in a Kafka log dir. Allocated, not apparent, size:
// Kafka preallocates each active segment's offset and time indexes as
// 10 MiB sparse files, which would count 20 MiB per partition more than
// is written.
func topicBlocks(logDir, topic string) int64 {
	dirs, _ := filepath.Glob(filepath.Join(logDir, topic+"-*"))
	var n int64
	for _, dir := range dirs {
		filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return nil
			}
			var st syscall.Stat_t
			if syscall.Stat(path, &st) == nil {
				n += st.Blocks * 512
			}
			return nil
		})
	}
	return n
}

// jvmWarmupTopic is the topic of warmJVM's load: 8 partitions, beside
// benchTopic.
const jvmWarmupTopic = "jit-warmup"

// jvmWarmupLoads are the producers of warmJVM, each paced to a rate so
// that the warm-up exercises every code path the timed phases use while
// writing little (about 20 MB/s), leaving the disk and the page cache
// much as they were.
var jvmWarmupLoads = []struct {
	valueBytes int
	rate       int // records/s
	opts       []kgo.Opt
}{
	{100, 10_000, []kgo.Opt{kgo.ProducerLinger(0)}}, // one small request after another: latency runs, capacity scenarios
	{100, 100_000, nil},                             // batches of many small records: throughput runs
	{1000, 10_000, nil},                             // batches of 1000 B records
}

// warmJVM gives a fresh Kafka broker the kinds of load the timed phases
// bring, untimed, so that they measure JIT-compiled code, as on a broker
// that has been up for a while, rather than the interpreter: for d, the
// producers of jvmWarmupLoads write to 8 partitions of jvmWarmupTopic at
// once; then a consumer reads everything back. Go brokers are compiled
// ahead of time and get no such phase.
func warmJVM(ctx context.Context, ep endpoint, kind string, d time.Duration) error {
	const partitions = 8
	if err := createTopic(ctx, ep, jvmWarmupTopic, partitions, kafkaTopicConfigs(kind)); err != nil {
		return err
	}
	if err := waitTopic(ctx, ep, jvmWarmupTopic, partitions); err != nil {
		return err
	}
	errs := make(chan error, len(jvmWarmupLoads))
	for _, load := range jvmWarmupLoads {
		go func() {
			cl, err := newProducer(ep, autoBuffer(load.valueBytes, partitions), append(load.opts, kgo.DefaultProduceTopic(jvmWarmupTopic))...)
			if err != nil {
				errs <- err
				return
			}
			defer cl.Close()
			errs <- producePaced(ctx, cl, newRecords(load.valueBytes), load.rate, d)
		}()
	}
	for range jvmWarmupLoads {
		if err := <-errs; err != nil {
			return fmt.Errorf("produce: %w", err)
		}
	}
	return drainTopic(ctx, ep, jvmWarmupTopic, 2*d)
}

// producePaced produces rate records/s for d, then waits for every ack.
func producePaced(ctx context.Context, cl *kgo.Client, recs records, rate int, d time.Duration) error {
	var failed atomic.Pointer[error]
	ack := func(_ *kgo.Record, err error) {
		if err != nil {
			failed.Store(&err)
		}
	}
	n := int(float64(rate) * d.Seconds())
	interval := time.Second / time.Duration(rate)
	ticker := time.NewTicker(pacingTick)
	defer ticker.Stop()
	start := time.Now()
	for sent := 0; sent < n; { // each tick sends what is due; the ticker bounds the loop to about d
		for due := min(int(time.Since(start)/interval)+1, n); sent < due; sent++ {
			cl.Produce(ctx, recs.record(sent), ack)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	if err := failed.Load(); err != nil {
		return *err
	}
	return nil
}

// drainTopic consumes topic from its start to its end offsets, within
// limit.
func drainTopic(ctx context.Context, ep endpoint, topic string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	admCl, err := ep.client()
	if err != nil {
		return err
	}
	ends, err := kadm.NewClient(admCl).ListEndOffsets(ctx, topic)
	admCl.Close()
	if err != nil {
		return fmt.Errorf("list end offsets: %w", err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	cl, err := ep.client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return err
	}
	defer cl.Close()
	var got int64
	for got < total { // each poll returns records or ends with ctx, which has a deadline
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("consume %s: %d of %d records: %w", topic, got, total, err)
		}
		if err := fetches.Err(); err != nil {
			return fmt.Errorf("consume %s: %w", topic, err)
		}
		got += int64(fetches.NumRecords())
	}
	return nil
}

// javaVersion is the first line `java -version` prints.
func javaVersion(java string) string {
	out, err := exec.Command(java, "-version").CombinedOutput()
	if err != nil {
		return "(unknown)"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}
