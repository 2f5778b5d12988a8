package broker

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/factorywire/factorywire/internal/testchild"
)

// recordValue is the value of record i of a partition: it names them, and
// is padded to about 400 bytes so that two batches fill a 1024-byte segment.
func recordValue(topic string, p int32, i int) []byte {
	v := fmt.Sprintf("%s/%d/%d/", topic, p, i)
	return []byte(v + strings.Repeat("x", 400-len(v)))
}

// produceRounds produces rounds records to every partition of topics, one
// produce request per round, and fails the test on an error.
func produceRounds(t testing.TB, cl *kgo.Client, topics []string, partitions int32, from, rounds int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := from; i < from+rounds; i++ {
		var recs []*kgo.Record
		for _, tp := range topics {
			for p := range partitions {
				recs = append(recs, &kgo.Record{Topic: tp, Partition: p, Value: recordValue(tp, p, i)})
			}
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("produce round %d: %v", i, err)
		}
	}
}

// consumeAll reads every partition of topics from the start until each
// holds want records, checking that record i of each partition is the one
// produced as i.
func consumeAll(t testing.TB, addr string, topics []string, partitions int32, want int) {
	t.Helper()
	cl := newClient(t, addr, kgo.ConsumeTopics(topics...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	got := map[string]int{}
	total := 0
	for total < len(topics)*int(partitions)*want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records before the deadline", total, len(topics)*int(partitions)*want)
		}
		fs.EachError(func(topic string, p int32, err error) {
			t.Fatalf("fetch %s/%d: %v", topic, p, err)
		})
		for _, r := range fs.Records() {
			key := fmt.Sprintf("%s/%d", r.Topic, r.Partition)
			if i := got[key]; r.Offset != int64(i) || string(r.Value) != string(recordValue(r.Topic, r.Partition, i)) {
				t.Fatalf("%s: record at offset %d is %.20q, want record %d", key, r.Offset, r.Value, i)
			}
			got[key]++
			total++
		}
	}
}

// TestClosedSegmentFilesBounded reads a topic of many small segments from
// the start through a broker that keeps at most 2 closed segments open: every
// record comes back, the gauge of open closed-segment files stays within
// the bound, and the evictions count as hits of max_open_closed_segments.
func TestClosedSegmentFilesBounded(t *testing.T) {
	const max = 2
	b := startBroker(t, "", func(c *Config) { c.MaxOpenClosedSegments = max })
	addr := b.Addr().String()
	topics := []string{"plant-a.press", "plant-a.lathe"}
	for _, tp := range topics {
		createTopic(t, addr, tp, 2, map[string]*string{"segment.bytes": ptr("1024")})
	}
	produceRounds(t, newClient(t, addr, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(kgo.NoCompression())), topics, 2, 0, 20)
	consumeAll(t, addr, topics, 2, 20)
	if files := gaugeValue(t, b.metrics.segmentFiles); files > max*3 {
		t.Errorf("factorywire_broker_closed_segment_files = %v, want at most %d", files, max*3)
	}
	if st := b.files.Stats(); st.Segments > max {
		t.Errorf("file cache %+v: want at most %d segments open", st, max)
	}
	if hits := limitHits(t, b, limitMaxOpenClosedSegments); hits == 0 {
		t.Errorf("max_open_closed_segments hits = 0, want the evictions counted")
	}
}

// TestLowFileLimit runs the broker binary with an open-file limit of 256
// (soft and hard, so that Go cannot raise it) over 40 partitions of about 20
// segments each: 2400 segment files, which the broker could not keep open
// at once. Producing to every partition and then reading every partition
// from the start returns every record, the broker stays up and stops
// cleanly, and its open files (from /proc/PID/fd, sampled throughout) stay
// below the limit.
func TestLowFileLimit(t *testing.T) {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skip("needs /proc/PID/fd (Linux)")
	}
	const (
		limit      = 256
		topicCount = 20
		partitions = 2
		rounds     = 40 // two records a segment: about 20 segments a partition
		maxOpen    = 8  // max_open_closed_segments
	)
	bin := filepath.Join(t.TempDir(), "broker")
	build := exec.Command("go", "build", "-o", bin, "./cmd/broker")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/broker: %v\n%s", err, out)
	}
	dataDir := t.TempDir()
	cfgPath := filepath.Join(t.TempDir(), "broker.yaml")
	cfg := fmt.Sprintf("listen: 127.0.0.1:0\ndata_dir: %s\nmax_open_closed_segments: %d\nclosed_segment_idle: 1m\n", dataDir, maxOpen)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", fmt.Sprintf(`ulimit -n %d && exec "$0" serve --config "$1"`, limit), bin, cfgPath)
	addr, logs := startChild(t, cmd)
	t.Cleanup(func() {
		if t.Failed() {
			lines := strings.Split(logs.String(), "\n")
			t.Logf("the broker's last log lines:\n%s", strings.Join(lines[max(0, len(lines)-30):], "\n"))
		}
	})
	pid := cmd.Process.Pid
	if soft, hard := fileLimits(t, pid); soft != limit || hard != limit {
		t.Fatalf("broker's open-file limits are %d (soft) and %d (hard), want %d", soft, hard, limit)
	}
	// The defaults (max_partitions 4000, max_connections 1000) need more
	// files than 256: the broker says so at start.
	if !strings.Contains(logs.String(), "open-files limit (RLIMIT_NOFILE) is below") || !strings.Contains(logs.String(), "open_files_limit=256") {
		t.Errorf("no warning that the open-files limit is below what the limits allow:\n%s", logs.String())
	}

	var maxFDs atomic.Int64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		for {
			if n := countFDs(pid); int64(n) > maxFDs.Load() {
				maxFDs.Store(int64(n))
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	stopSampler := sync.OnceFunc(func() { close(stop); sampler.Wait() })
	defer stopSampler()

	var topics []string
	for i := range topicCount {
		topics = append(topics, fmt.Sprintf("plant-%02d.press", i))
	}
	adm := kadm.NewClient(newClient(t, addr))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	created, err := adm.CreateTopics(ctx, partitions, 1, map[string]*string{"segment.bytes": ptr("1024")}, topics...)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range created.Sorted() {
		if c.Err != nil {
			t.Fatalf("create %s: %v (%s)", c.Topic, c.Err, c.ErrMessage)
		}
	}
	producer := newClient(t, addr, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(kgo.NoCompression()))
	produceRounds(t, producer, topics, partitions, 0, rounds)

	segs, err := filepath.Glob(filepath.Join(dataDir, "*", "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	if len(segs)*3 <= limit {
		t.Fatalf("%d segments (%d files): the test needs more files than the limit %d", len(segs), len(segs)*3, limit)
	}
	consumeAll(t, addr, topics, partitions, rounds)

	// Still up: it takes another round and answers.
	produceRounds(t, producer, topics, partitions, rounds, 1)
	stopSampler()
	t.Logf("%d partitions, %d segments (%d files with every segment open); the broker's open files peaked at %d of %d",
		topicCount*partitions, len(segs), len(segs)*3, maxFDs.Load(), limit)
	if m := maxFDs.Load(); m >= limit {
		t.Errorf("the broker had %d files open, the limit is %d", m, limit)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := logs.Wait(cmd); err != nil {
		t.Fatalf("broker exit after SIGTERM: %v\n%s", err, logs)
	}
	if strings.Contains(logs.String(), "too many open files") {
		t.Errorf("the broker ran out of file handles:\n%s", logs)
	}
}

var listeningLine = regexp.MustCompile(`msg="broker listening" addr=(\S+)`)

// startChild starts the broker command cmd and returns once it logs its
// address, with its standard error so far and to come. The test kills it
// at the end if it still runs.
func startChild(t *testing.T, cmd *exec.Cmd) (string, *testchild.Log) {
	t.Helper()
	m, logs := testchild.StartWaiting(t, cmd, listeningLine, time.Minute)
	return m[1], logs
}

// countFDs returns the number of files process pid has open, or 0 if it
// cannot tell.
func countFDs(pid int) int {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0
	}
	return len(entries)
}

// fileLimits returns process pid's open-file limits from /proc/PID/limits.
func fileLimits(t testing.TB, pid int) (soft, hard int) {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(raw)) {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			f := strings.Fields(rest)
			if len(f) < 2 {
				break
			}
			soft, _ = strconv.Atoi(f[0])
			hard, _ = strconv.Atoi(f[1])
			return soft, hard
		}
	}
	t.Fatalf("no open-file limit in /proc/%d/limits", pid)
	return 0, 0
}
