package broker

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The crash test re-executes this test binary as a broker child process;
// these variables tell the child where its data dir and address file are.
const (
	childDirEnv  = "FACTORYWIRE_TEST_BROKER_CHILD_DIR"
	childAddrEnv = "FACTORYWIRE_TEST_BROKER_CHILD_ADDR"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(childDirEnv); dir != "" {
		runBrokerChild(dir, os.Getenv(childAddrEnv))
		return
	}
	os.Exit(m.Run())
}

// runBrokerChild serves a broker until the process is killed.
func runBrokerChild(dir, addrFile string) {
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = dir
	b, err := New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child broker:", err)
		os.Exit(3)
	}
	tmp := addrFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.Addr().String()), 0o644); err != nil {
		os.Exit(4)
	}
	os.Rename(tmp, addrFile)
	select {} // until SIGKILL; the test process also kills us at cleanup
}

// brokerChild runs the broker in a child process over one data dir.
type brokerChild struct {
	t    *testing.T
	dir  string
	cmd  *exec.Cmd
	errs bytes.Buffer
	addr atomic.Value // string
}

func (c *brokerChild) start() {
	c.t.Helper()
	addrFile := filepath.Join(c.t.TempDir(), "addr")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childDirEnv+"="+c.dir, childAddrEnv+"="+addrFile)
	cmd.Stderr = &c.errs
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.cmd = cmd
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if raw, err := os.ReadFile(addrFile); err == nil {
			c.addr.Store(string(raw))
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Kill()
	c.t.Fatalf("child broker did not start within 30s: %s", c.errs.String())
}

func (c *brokerChild) kill() {
	if c.cmd != nil {
		c.cmd.Process.Signal(syscall.SIGKILL)
		c.cmd.Wait()
		c.cmd = nil
	}
}

// dial always connects to the current child, whatever address metadata
// named, so one client follows the broker across restarts on new ports.
func (c *brokerChild) dial(ctx context.Context, network, _ string) (net.Conn, error) {
	d := net.Dialer{Timeout: 2 * time.Second}
	return d.DialContext(ctx, network, c.addr.Load().(string))
}

// TestCrashKeepsAcknowledgedRecords kills the broker with SIGKILL at random
// moments while an idempotent acks=all producer writes keyed records, 20
// times, restarting it each time. Afterwards every acknowledged record is
// present exactly once, and each key's records are in order without
// duplicates (records never acknowledged may be present, once).
func TestCrashKeepsAcknowledgedRecords(t *testing.T) {
	const (
		rounds = 20
		keys   = 16
		topic  = "crash"
	)
	child := &brokerChild{t: t, dir: t.TempDir()}
	child.start()
	t.Cleanup(child.kill)
	createTopic(t, child.addr.Load().(string), topic, 4, map[string]*string{"segment.bytes": ptr("65536")})

	prod, err := kgo.NewClient(
		kgo.SeedBrokers(child.addr.Load().(string)),
		kgo.Dialer(child.dial),
		kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProduceRequestTimeout(5*time.Second),
		kgo.RetryBackoffFn(func(int) time.Duration { return 20 * time.Millisecond }),
		kgo.MetadataMinAge(20*time.Millisecond), // rediscover the restarted broker at once
		kgo.MaxBufferedRecords(5000),
		kgo.WithLogger(kgo.BasicLogger(os.Stderr, crashLogLevel(), nil)),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()

	var (
		mu       sync.Mutex
		acked    = map[string]map[int]bool{} // key -> seqs acknowledged
		ackCount atomic.Int64
		failures atomic.Int64
	)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		next := make([]int, keys)
		for i := 0; ctx.Err() == nil; i++ {
			k := i % keys
			key, seq := "dev-"+strconv.Itoa(k), next[k]
			next[k]++
			prod.Produce(ctx, &kgo.Record{Key: []byte(key), Value: []byte(strconv.Itoa(seq))}, func(r *kgo.Record, err error) {
				if err != nil {
					failures.Add(1)
					return
				}
				mu.Lock()
				if acked[key] == nil {
					acked[key] = map[int]bool{}
				}
				acked[key][seq] = true
				mu.Unlock()
				ackCount.Add(1)
			})
		}
	}()

	// Each round waits until the producer has been acknowledged by the
	// restarted broker, then kills it at a random moment, so every kill
	// lands while records are in flight.
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for round := 0; round < rounds; round++ {
		before := ackCount.Load()
		deadline := time.Now().Add(30 * time.Second)
		for ackCount.Load() == before {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: no record acknowledged within 30s of the restart (%d failures); broker: %s", round, failures.Load(), child.errs.String())
			}
			time.Sleep(2 * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.IntN(200)) * time.Millisecond)
		child.kill()
		child.start()
	}
	stop()
	<-done
	flushCtx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := prod.Flush(flushCtx); err != nil {
		t.Fatalf("flush after the last restart: %v", err)
	}

	// Read everything back with a fresh client.
	addr := child.addr.Load().(string)
	adm := kadm.NewClient(newClient(t, addr))
	ends, err := adm.ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	total := int64(0)
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	records := consumeN(t, addr, topic, int(total))

	seen := map[string]map[int]bool{}
	last := map[string]int{}
	for _, r := range records {
		key := string(r.Key)
		seq, err := strconv.Atoi(string(r.Value))
		if err != nil {
			t.Fatalf("record %s/%d@%d: value %q", r.Topic, r.Partition, r.Offset, r.Value)
		}
		if seen[key] == nil {
			seen[key] = map[int]bool{}
			last[key] = -1
		}
		if seen[key][seq] {
			t.Fatalf("key %s seq %d stored twice (second at partition %d offset %d)", key, seq, r.Partition, r.Offset)
		}
		if seq <= last[key] {
			t.Fatalf("key %s: seq %d after %d (out of order at partition %d offset %d)", key, seq, last[key], r.Partition, r.Offset)
		}
		seen[key][seq], last[key] = true, seq
	}
	mu.Lock()
	defer mu.Unlock()
	missing := []string{}
	for key, seqs := range acked {
		for seq := range seqs {
			if !seen[key][seq] {
				missing = append(missing, fmt.Sprintf("%s/%d", key, seq))
			}
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d acknowledged records lost, e.g. %s", len(missing), strings.Join(missing[:min(10, len(missing))], ", "))
	}
	t.Logf("%d rounds: %d records acknowledged, %d stored, %d produce failures", rounds, ackCount.Load(), len(records), failures.Load())
}

func crashLogLevel() kgo.LogLevel {
	if os.Getenv("FACTORYWIRE_CRASH_DEBUG") != "" {
		return kgo.LogLevelDebug
	}
	return kgo.LogLevelNone
}
