package broker

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/factorywire/factorywire/storage/commitlog"
)

// logSink is a logger whose output a test can read, safe for concurrent use.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *logSink) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(s, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// lines returns the logged lines that contain every one of subs.
func (s *logSink) lines(subs ...string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, l := range strings.Split(s.buf.String(), "\n") {
		ok := l != ""
		for _, sub := range subs {
			ok = ok && strings.Contains(l, sub)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}

// faultFS is the operating system's file system with injectable failures:
// fail, when set, is asked before each write, fsync and open.
type faultFS struct {
	commitlog.FS
	fail atomic.Pointer[func(op, name string) error]
}

func newFaultFS() *faultFS { return &faultFS{FS: commitlog.OSFS} }

func (f *faultFS) set(fn func(op, name string) error) {
	if fn == nil {
		f.fail.Store(nil)
		return
	}
	f.fail.Store(&fn)
}

func (f *faultFS) check(op, name string) error {
	if fn := f.fail.Load(); fn != nil {
		return (*fn)(op, name)
	}
	return nil
}

func (f *faultFS) OpenFile(name string, flag int, perm os.FileMode) (commitlog.File, error) {
	if err := f.check("open", name); err != nil {
		return nil, err
	}
	file, err := f.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f, name: name}, nil
}

type faultFile struct {
	commitlog.File
	fs   *faultFS
	name string
}

func (f *faultFile) Write(b []byte) (int, error) {
	if err := f.fs.check("write", f.name); err != nil {
		return 0, err
	}
	return f.File.Write(b)
}

func (f *faultFile) Sync() error {
	if err := f.fs.check("sync", f.name); err != nil {
		return err
	}
	return f.File.Sync()
}

// inDir makes a failure of op with errno for files of the partition
// directory dir (a base name such as "full-0").
func inDir(dir, op string, errno syscall.Errno) func(string, string) error {
	return func(o, name string) error {
		if o == op && filepath.Base(filepath.Dir(name)) == dir {
			return &fs.PathError{Op: o, Path: name, Err: errno}
		}
		return nil
	}
}

// rawProduce sends one uncompressed batch of n records and returns the
// partition's answer.
func rawProduce(t *testing.T, c *rawConn, topic string, p int32, n int, value string) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	return producePartition(c.roundTrip(produceReq(8, -1, topic, p, makeBatch(testBatch{records: n, timestamp: time.Now().UnixMilli(), value: []byte(value)}))))
}

// TestPartitionHealsAfterDiskFull fills the disk of one partition: its
// produces get a retriable KAFKA_STORAGE_ERROR naming the partition and the
// cause while another partition keeps accepting them, and once space is
// back it accepts produces again with no restart. An idempotent producer
// that kept retrying loses and duplicates nothing.
func TestPartitionHealsAfterDiskFull(t *testing.T) {
	ffs := newFaultFS()
	var logs logSink
	b := startBroker(t, "", func(c *Config) { c.FS = ffs; c.Logger = logs.logger() })
	addr := b.Addr().String()
	createTopic(t, addr, "full", 1, nil)
	createTopic(t, addr, "other", 1, nil)
	c := dialRaw(t, addr)
	if got := rawProduce(t, c, "full", 0, 3, "before"); got.ErrorCode != 0 {
		t.Fatalf("produce before the disk filled: %v", kerr.ErrorForCode(got.ErrorCode))
	}

	ffs.set(inDir("full-0", "write", syscall.ENOSPC))
	for range 3 {
		got := rawProduce(t, c, "full", 0, 3, "while full")
		if got.ErrorCode != kerr.KafkaStorageError.Code || got.ErrorMessage == nil ||
			!strings.Contains(*got.ErrorMessage, "full-0") || !strings.Contains(*got.ErrorMessage, "disk_full") {
			t.Fatalf("produce to the full partition: error %v, message %v; want KAFKA_STORAGE_ERROR naming full-0 and disk_full",
				kerr.ErrorForCode(got.ErrorCode), got.ErrorMessage)
		}
		if !kerr.IsRetriable(kerr.ErrorForCode(got.ErrorCode)) {
			t.Fatal("KAFKA_STORAGE_ERROR is not retriable for clients")
		}
	}
	if got := rawProduce(t, c, "other", 0, 3, "x"); got.ErrorCode != 0 {
		t.Fatalf("produce to another partition while full-0's disk is full: %v", kerr.ErrorForCode(got.ErrorCode))
	}

	// An idempotent producer keeps retrying through the fault.
	cl := newClient(t, addr, kgo.DefaultProduceTopic("full"), kgo.RecordRetries(1000), kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }))
	const n = 200
	var acked atomic.Int64
	var produceErr atomic.Pointer[error]
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		cl.Produce(context.Background(), &kgo.Record{Key: []byte("k"), Value: fmt.Appendf(nil, "%04d", i)}, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				produceErr.Store(&err)
				return
			}
			acked.Add(1)
		})
	}
	time.Sleep(300 * time.Millisecond) // a few retries fail against the full disk
	ffs.set(nil)                       // space is back
	wg.Wait()
	if p := produceErr.Load(); p != nil {
		t.Fatalf("idempotent produce failed: %v", *p)
	}
	if got := rawProduce(t, c, "full", 0, 3, "after"); got.ErrorCode != 0 {
		t.Fatalf("produce after space came back: %v", kerr.ErrorForCode(got.ErrorCode))
	}
	recs := consumeN(t, addr, "full", 3+n+3)
	var seq []string
	for _, r := range recs {
		if len(r.Key) > 0 {
			seq = append(seq, string(r.Value))
		}
	}
	for i, v := range seq {
		if want := fmt.Sprintf("%04d", i); v != want {
			t.Fatalf("record %d of the idempotent producer is %q, want %q (lost, duplicated or reordered)", i, v, want)
		}
	}
	if len(seq) != n {
		t.Fatalf("consumed %d of the idempotent producer's %d records", len(seq), n)
	}
	if got := counterValue(t, b.metrics.partitionErrors.WithLabelValues("full", "0", "disk_full")); got < 3 {
		t.Fatalf("partition_errors_total{full,0,disk_full} = %v, want at least 3", got)
	}
	if got := logs.lines("partition storage failed", "topic=full", "cause=disk_full"); len(got) != 1 {
		t.Fatalf("%d 'storage failed' lines, want 1 for the whole fault:\n%s", len(got), strings.Join(got, "\n"))
	}
	if got := logs.lines("partition healed", "topic=full"); len(got) != 1 {
		t.Fatalf("%d 'healed' lines, want 1", len(got))
	}
}

// TestFailedFsyncIsNotAcknowledged fails one fsync: the produce it covered
// is not acknowledged, the log heals at the next produce, and what the
// failed fsync may have lost is not served: a consumer sees exactly the
// acknowledged batches.
func TestFailedFsyncIsNotAcknowledged(t *testing.T) {
	ffs := newFaultFS()
	b := startBroker(t, "", func(c *Config) { c.FS = ffs })
	addr := b.Addr().String()
	createTopic(t, addr, "sync", 1, nil)
	c := dialRaw(t, addr)
	var want []string
	produce := func(value string) int16 {
		got := rawProduce(t, c, "sync", 0, 2, value)
		if got.ErrorCode == 0 {
			want = append(want, value, value)
		}
		return got.ErrorCode
	}
	if code := produce("a"); code != 0 {
		t.Fatal(kerr.ErrorForCode(code))
	}
	var once atomic.Bool
	ffs.set(func(op, name string) error {
		if op == "sync" && strings.HasSuffix(name, ".log") && filepath.Base(filepath.Dir(name)) == "sync-0" && once.CompareAndSwap(false, true) {
			return &fs.PathError{Op: op, Path: name, Err: syscall.EIO}
		}
		return nil
	})
	if code := produce("b"); code != kerr.KafkaStorageError.Code {
		t.Fatalf("produce whose fsync failed: %v, want KAFKA_STORAGE_ERROR", kerr.ErrorForCode(code))
	}
	deadline := time.Now().Add(10 * time.Second)
	for produce("c") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the partition did not heal within 10s of the fault ending")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var got []string
	for _, r := range consumeN(t, addr, "sync", len(want)) {
		got = append(got, string(r.Value))
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("consumed %v, want exactly the acknowledged %v", got, want)
	}
	if b.partition("sync", 0).log.Truncations() != 1 {
		t.Fatalf("Truncations %d, want 1: the unsynced batch must be removed", b.partition("sync", 0).log.Truncations())
	}
}

// TestCorruptPartitionAtStartupGoesOffline damages one partition's active
// segment and restarts the broker unclean: that partition alone is offline
// (Metadata LEADER_NOT_AVAILABLE with its replica offline, produce and fetch
// KAFKA_STORAGE_ERROR, a log line naming the file and byte), and every other
// partition serves. A damaged complete last batch is not dropped as a torn
// write: it may hold acknowledged records.
func TestCorruptPartitionAtStartupGoesOffline(t *testing.T) {
	for _, tc := range []struct {
		name  string
		batch func(positions []int64) int64 // which batch to damage
	}{
		{"batch in the middle", func(ps []int64) int64 { return ps[len(ps)/2] }},
		{"complete last batch", func(ps []int64) int64 { return ps[len(ps)-1] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			b := startBroker(t, dir)
			addr := b.Addr().String()
			createTopic(t, addr, "dmg", 2, nil)
			createTopic(t, addr, "ok", 1, nil)
			c := dialRaw(t, addr)
			for i := range 10 {
				for _, tp := range []struct {
					topic string
					p     int32
				}{{"dmg", 0}, {"dmg", 1}, {"ok", 0}} {
					if got := rawProduce(t, c, tp.topic, tp.p, 5, fmt.Sprint(i)); got.ErrorCode != 0 {
						t.Fatal(kerr.ErrorForCode(got.ErrorCode))
					}
				}
			}
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			pdir := filepath.Join(dir, "dmg-0")
			file, pos, size := damageActiveBatch(t, pdir, tc.batch)
			// As after a crash: recovery validates the active segment.
			if err := os.Remove(filepath.Join(pdir, "clean-shutdown")); err != nil {
				t.Fatal(err)
			}

			var logs logSink
			b = startBroker(t, dir, func(c *Config) { c.Logger = logs.logger() })
			addr = b.Addr().String()
			c = dialRaw(t, addr)
			meta := c.roundTrip(func() kmsg.Request { r := kmsg.NewPtrMetadataRequest(); r.Version = 7; return r }()).(*kmsg.MetadataResponse)
			for _, mt := range meta.Topics {
				for _, mp := range mt.Partitions {
					offline := *mt.Topic == "dmg" && mp.Partition == 0
					if offline != (mp.ErrorCode == kerr.LeaderNotAvailable.Code) || offline != (mp.Leader == -1) || offline != (len(mp.OfflineReplicas) == 1) {
						t.Fatalf("metadata of %s-%d: error %d, leader %d, offline replicas %v", *mt.Topic, mp.Partition, mp.ErrorCode, mp.Leader, mp.OfflineReplicas)
					}
				}
			}
			got := rawProduce(t, c, "dmg", 0, 1, "x")
			if got.ErrorCode != kerr.KafkaStorageError.Code || got.ErrorMessage == nil || !strings.Contains(*got.ErrorMessage, "offline") {
				t.Fatalf("produce to the offline partition: %v %v", kerr.ErrorForCode(got.ErrorCode), got.ErrorMessage)
			}
			for _, tp := range []struct {
				topic string
				p     int32
			}{{"dmg", 1}, {"ok", 0}} {
				if got := rawProduce(t, c, tp.topic, tp.p, 1, "after"); got.ErrorCode != 0 {
					t.Fatalf("produce to %s-%d beside the offline partition: %v", tp.topic, tp.p, kerr.ErrorForCode(got.ErrorCode))
				}
			}
			if recs := consumeN(t, addr, "ok", 51); string(recs[50].Value) != "after" {
				t.Fatalf("last record of ok-0: %q", recs[50].Value)
			}
			want := fmt.Sprintf("byte=%d", pos)
			if got := logs.lines("partition offline", "topic=dmg", "partition=0", "file="+file, want); len(got) != 1 {
				t.Fatalf("no log line naming the offline partition, %s and %s:\n%s", file, want, strings.Join(logs.lines("dmg"), "\n"))
			}
			if fi, err := os.Stat(file); err != nil || fi.Size() != size {
				t.Fatalf("the damaged segment was changed: %v, size %d, want %d", err, fi.Size(), size)
			}
			if got := gaugeValue(t, b.metrics.offlinePartitions); got != 1 {
				t.Fatalf("offline_partitions %v, want 1", got)
			}

			// The operator repairs it: the damaged batch's 5 offsets
			// are quarantined, the partition serves again.
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			rep, err := commitlog.Repair(pdir, commitlog.RepairOptions{})
			if err != nil || len(rep.Ranges) != 1 {
				t.Fatalf("repair: %v, %+v", err, rep)
			}
			b = startBroker(t, dir)
			addr = b.Addr().String()
			if got := rawProduce(t, dialRaw(t, addr), "dmg", 0, 1, "repaired"); got.ErrorCode != 0 {
				t.Fatalf("produce after the repair: %v", kerr.ErrorForCode(got.ErrorCode))
			}
			recs := consumeN(t, addr, "dmg", 45+1+51, kgo.ConsumeTopics("dmg"))
			var p0 []*kgo.Record
			for _, r := range recs {
				if r.Partition == 0 {
					p0 = append(p0, r)
				}
			}
			if len(p0) != 46 || string(p0[45].Value) != "repaired" {
				t.Fatalf("partition 0 after the repair: %d records, want the 45 undamaged and the new one", len(p0))
			}
		})
	}
}

// TestCorruptOffsetStoreTakesOnlyGroupsOffline damages the committed
// offsets' log and restarts the broker unclean: it starts, every partition
// serves produce and fetch, FindCoordinator answers COORDINATOR_NOT_AVAILABLE
// (clients retry) and a log line names the file, the byte and the repair
// command. After the repair the groups are back with the offsets outside the
// damaged range.
func TestCorruptOffsetStoreTakesOnlyGroupsOffline(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir)
	addr := b.Addr().String()
	createTopic(t, addr, "data", 1, nil)
	c := dialRaw(t, addr)
	if got := rawProduce(t, c, "data", 0, 3, "x"); got.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(got.ErrorCode))
	}
	adm := kadm.NewClient(newClient(t, addr))
	ctx := context.Background()
	for i := range 5 {
		var offs kadm.Offsets
		offs.Add(kadm.Offset{Topic: "data", Partition: 0, At: int64(i + 1), LeaderEpoch: -1})
		if err := adm.CommitAllOffsets(ctx, fmt.Sprintf("g%d", i), offs); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	odir := filepath.Join(dir, "__consumer_offsets")
	file, pos, _ := damageActiveBatch(t, odir, func(ps []int64) int64 { return ps[2] }) // the third commit
	if err := os.Remove(filepath.Join(odir, "clean-shutdown")); err != nil {
		t.Fatal(err)
	}

	var logs logSink
	b = startBroker(t, dir, func(c *Config) { c.Logger = logs.logger() })
	addr = b.Addr().String()
	c = dialRaw(t, addr)
	if got := rawProduce(t, c, "data", 0, 1, "while groups are offline"); got.ErrorCode != 0 {
		t.Fatalf("produce while groups are offline: %v", kerr.ErrorForCode(got.ErrorCode))
	}
	if recs := consumeN(t, addr, "data", 4); string(recs[3].Value) != "while groups are offline" {
		t.Fatalf("fetch while groups are offline: %q", recs[3].Value)
	}
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.Version = 3
	fc.CoordinatorKey = "g0"
	if got := c.roundTrip(fc).(*kmsg.FindCoordinatorResponse); got.ErrorCode != kerr.CoordinatorNotAvailable.Code {
		t.Fatalf("FindCoordinator while groups are offline: %v", kerr.ErrorForCode(got.ErrorCode))
	}
	of := kmsg.NewPtrOffsetFetchRequest()
	of.Version = 5
	of.Group = "g0"
	c.send(of)
	if !c.closedByBroker() {
		t.Fatal("an OffsetFetch while groups are offline was answered")
	}
	if got := logs.lines("consumer groups offline", "file="+file, fmt.Sprintf("byte=%d", pos), "--topic __consumer_offsets --partition 0"); len(got) != 1 {
		t.Fatalf("no log line naming the offline groups, %s and byte %d:\n%s", file, pos, strings.Join(logs.lines("offline"), "\n"))
	}

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := commitlog.Repair(odir, commitlog.RepairOptions{}); err != nil {
		t.Fatal(err)
	}
	b = startBroker(t, dir)
	adm = kadm.NewClient(newClient(t, b.Addr().String()))
	for i := range 5 {
		got, err := adm.FetchOffsets(ctx, fmt.Sprintf("g%d", i))
		if err != nil {
			t.Fatalf("fetch offsets of g%d after the repair: %v", i, err)
		}
		o, ok := got.Lookup("data", 0)
		switch {
		case i == 2 && ok && o.At >= 0:
			t.Fatalf("g2's commit was in the damaged batch, yet its offset is %d", o.At)
		case i != 2 && (!ok || o.At != int64(i+1)):
			t.Fatalf("g%d's offset after the repair: %+v (found %v), want %d", i, o.Offset, ok, i+1)
		}
	}
}

// TestOffsetCommitsResumeAfterDiskFull fills the disk of the committed
// offsets' log: commits fail meanwhile, and succeed again once space is
// back, with no restart.
func TestOffsetCommitsResumeAfterDiskFull(t *testing.T) {
	ffs := newFaultFS()
	b := startBroker(t, "", func(c *Config) { c.FS = ffs })
	addr := b.Addr().String()
	createTopic(t, addr, "data", 1, nil)
	adm := kadm.NewClient(newClient(t, addr, kgo.RequestRetries(0)))
	ctx := context.Background()
	commit := func(at int64) error {
		var offs kadm.Offsets
		offs.Add(kadm.Offset{Topic: "data", Partition: 0, At: at, LeaderEpoch: -1})
		return adm.CommitAllOffsets(ctx, "g", offs)
	}
	if err := commit(1); err != nil {
		t.Fatal(err)
	}
	ffs.set(inDir("__consumer_offsets", "write", syscall.ENOSPC))
	if err := commit(2); err == nil {
		t.Fatal("a commit succeeded while the disk was full")
	}
	ffs.set(nil)
	deadline := time.Now().Add(15 * time.Second)
	for commit(3) != nil {
		if time.Now().After(deadline) {
			t.Fatal("commits did not resume within 15s of space coming back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	got, err := adm.FetchOffsets(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := got.Lookup("data", 0); !ok || o.At != 3 {
		t.Fatalf("committed offset %+v (found %v), want 3", o.Offset, ok)
	}
}

// damageActiveBatch flips a record byte of one batch of the active (last)
// segment of the log in dir, chosen by which from the batches' byte
// positions, so that its CRC no longer matches. It returns the file, the
// batch's position and the file's size.
func damageActiveBatch(t *testing.T, dir string, which func(positions []int64) int64) (string, int64, int64) {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	file := segs[len(segs)-1]
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var positions []int64
	for pos := 0; pos < len(raw); pos += 12 + int(binary.BigEndian.Uint32(raw[pos+8:])) {
		positions = append(positions, int64(pos))
	}
	pos := which(positions)
	raw[pos+61+2] ^= 0x10 // a record byte: the CRC no longer matches
	if err := os.WriteFile(file, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return file, pos, int64(len(raw))
}
