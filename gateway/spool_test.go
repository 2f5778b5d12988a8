package gateway

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/internal/recordbatch"
	"github.com/factorywire/factorywire/storage/commitlog"
)

func testSample(dev string, seq uint64) devices.Sample {
	return devices.Sample{
		Factory: testFactory, Device: dev, Class: "press",
		Time: time.UnixMilli(1_764_550_000_000 + int64(seq)).UTC(), Seq: seq,
		Fields: map[string]devices.Value{"pressure": devices.Float64Value(float64(seq) / 10), "pad": devices.StringValue(fmt.Sprintf("%0200d", seq))},
	}
}

// fill appends samples of dev until the spool has taken n.
func fill(t *testing.T, s *Spool, dev string, from, n uint64) {
	t.Helper()
	for seq := from; seq < from+n; seq++ {
		if err := s.Append(context.Background(), "plant-t.press", []devices.Sample{testSample(dev, seq)}); err != nil {
			t.Fatalf("append seq %d: %v", seq, err)
		}
	}
}

// TestSpoolDropOldest: a full spool with drop_oldest drops whole old
// segments, counts the samples, stays near its bound, and keeps the seqs of
// what it dropped as used.
func TestSpoolDropOldest(t *testing.T) {
	dir := t.TempDir()
	cfg := SpoolConfig{MaxBytes: 1 << 20, WhenFull: DropOldest}
	s, err := OpenSpool(dir, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	dropped := 0
	s.dropped = func(topic string, n int) { dropped += n }
	const n = 8000 // about 3 MiB of samples
	fill(t, s, "press-01", 0, n)
	if dropped == 0 {
		t.Fatal("nothing dropped from a spool three times over its bound")
	}
	if size := s.Size(); size > cfg.MaxBytes+cfg.segmentBytes() {
		t.Fatalf("spool holds %d bytes, bound %d + one segment", size, cfg.MaxBytes)
	}
	if got := s.backlog(false); got+int64(dropped) != n {
		t.Fatalf("backlog %d + dropped %d != %d appended", got, dropped, n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = OpenSpool(dir, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	next, err := s.NextSeqs()
	if err != nil {
		t.Fatal(err)
	}
	if next["press-01"] != n {
		t.Fatalf("next seq after reopening %d, want %d", next["press-01"], n)
	}
}

// TestSpoolPausePolling: a full spool with pause_polling makes Append wait
// until the forwarder frees room, and drops nothing.
func TestSpoolPausePolling(t *testing.T) {
	cfg := SpoolConfig{MaxBytes: 1 << 20, WhenFull: PausePolling}
	s, err := OpenSpool(t.TempDir(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	waits := 0
	s.fullWaits = func() { waits++ }
	seq := uint64(0)
	for s.Size() < cfg.MaxBytes {
		fill(t, s, "press-01", seq, 1)
		seq++
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	err = s.Append(ctx, "plant-t.press", []devices.Sample{testSample("press-01", seq)})
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || waits == 0 {
		t.Fatalf("Append to a full spool: %v after %d waits, want it to wait until its context ends", err, waits)
	}
	// The forwarder delivers everything: the waiting Append goes through.
	done := make(chan error, 1)
	go func() {
		done <- s.Append(context.Background(), "plant-t.press", []devices.Sample{testSample("press-01", seq)})
	}()
	tp, err := s.topic("plant-t.press")
	if err != nil {
		t.Fatal(err)
	}
	if err := tp.advance(tp.log().DurableOffset(), map[string]uint64{"press-01": seq - 1}, true); err != nil {
		t.Fatal(err)
	}
	s.freed()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Append still waiting after the spool was emptied")
	}
	if s.backlog(false) != 1 {
		t.Fatalf("backlog %d, want the one sample appended after the drain", s.backlog(false))
	}
}

// TestSpoolRefusesCorruptCheckpoint: a checkpoint that does not parse is an
// error naming the file, never a silent restart from offset 0.
func TestSpoolRefusesCorruptCheckpoint(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(dir, SpoolConfig{MaxBytes: 1 << 20, WhenFull: DropOldest}, nil)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, s, "press-01", 0, 3)
	s.Close()
	if err := os.WriteFile(dir+"/plant-t.press/"+checkpointFile, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = OpenSpool(dir, SpoolConfig{MaxBytes: 1 << 20, WhenFull: DropOldest}, nil)
	if err == nil || !strings.Contains(err.Error(), checkpointFile) {
		t.Fatalf("OpenSpool with a corrupt checkpoint: %v", err)
	}
}

// TestSpoolConcurrentAppends: appends from many goroutines (as from many
// connections) are all stored, each goroutine's samples in its order, and
// reopening finds every device's next seq.
func TestSpoolConcurrentAppends(t *testing.T) {
	dir := t.TempDir()
	cfg := SpoolConfig{MaxBytes: 64 << 20, WhenFull: DropOldest}
	s, err := OpenSpool(dir, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 32, 25
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		go func() {
			dev := fmt.Sprintf("press-%02d", w)
			for seq := uint64(0); seq < each; seq++ {
				if err := s.Append(context.Background(), "plant-t.press", []devices.Sample{testSample(dev, seq)}); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for w := 0; w < writers; w++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	tp, err := s.topic("plant-t.press")
	if err != nil {
		t.Fatal(err)
	}
	next := map[string]uint64{}
	batches := 0
	if err := tp.log().Batches(0, func(commitlog.BatchHeader) error { batches++; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := tp.scan(0, tp.log().EndOffset(), func(_ int64, r recordbatch.Record) error {
		seq, err := spooledSeq(r.Value)
		if err != nil {
			return err
		}
		if seq != next[string(r.Key)] {
			t.Fatalf("%s: seq %d stored where %d was due", r.Key, seq, next[string(r.Key)])
		}
		next[string(r.Key)]++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for w := 0; w < writers; w++ {
		if dev := fmt.Sprintf("press-%02d", w); next[dev] != each {
			t.Fatalf("%s: %d samples stored, want %d", dev, next[dev], each)
		}
	}
	t.Logf("%d appends stored in %d batches", writers*each, batches)
	s.Close()
	s, err = OpenSpool(dir, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.NextSeqs()
	if err != nil || len(got) != writers || got["press-07"] != each {
		t.Fatalf("NextSeqs after reopening = %v, %v", got, err)
	}
}

// TestSpoolAppendEach: one call with samples of two topics interleaved
// writes each into its topic, in order, in one round.
func TestSpoolAppendEach(t *testing.T) {
	s, err := OpenSpool(t.TempDir(), SpoolConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var batch []devices.Sample
	for seq := range uint64(6) {
		smp := testSample(fmt.Sprintf("dev-%d", seq%3), seq)
		if seq%3 == 1 {
			smp.Class = "power-meter"
		}
		batch = append(batch, smp)
	}
	topicOf := func(smp *devices.Sample) string { return "plant-t." + smp.Class }
	notified := s.appended()
	if err := s.AppendEach(context.Background(), batch, topicOf); err != nil {
		t.Fatal(err)
	}
	select {
	case <-notified:
	default:
		t.Fatal("no commit round announced")
	}
	want := map[string]string{
		"plant-t.press":       "dev-0/0 dev-2/2 dev-0/3 dev-2/5",
		"plant-t.power-meter": "dev-1/1 dev-1/4",
	}
	for topic, w := range want {
		tp, err := s.topic(topic)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		if err := tp.scan(0, tp.log().EndOffset(), func(_ int64, r recordbatch.Record) error {
			seq, err := spooledSeq(r.Value)
			got = append(got, fmt.Sprintf("%s/%d", r.Key, seq))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if g := strings.Join(got, " "); g != w {
			t.Errorf("%s holds %s, want %s", topic, g, w)
		}
	}
	if err := s.AppendEach(context.Background(), batch[:1], func(*devices.Sample) string { return "no topic" }); err == nil {
		t.Error("a sample for an invalid topic name was taken")
	}
}

// TestSpoolAppendLargeBatch: one call larger than a spool batch is split
// into several batches, and every record keeps its own value.
func TestSpoolAppendLargeBatch(t *testing.T) {
	s, err := OpenSpool(t.TempDir(), SpoolConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 4000 // about 1.5 MiB of values: three batches
	batch := make([]devices.Sample, n)
	for i := range batch {
		batch[i] = testSample("press-01", uint64(i))
	}
	if err := s.Append(context.Background(), "plant-t.press", batch); err != nil {
		t.Fatal(err)
	}
	tp, err := s.topic("plant-t.press")
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	if err := tp.scan(0, tp.log().EndOffset(), func(off int64, r recordbatch.Record) error {
		got, err := devices.DecodeSample(r.Value)
		if err != nil {
			return fmt.Errorf("offset %d: %v", off, err)
		}
		if want := batch[i]; got.Seq != want.Seq || !got.Fields["pad"].Equal(want.Fields["pad"]) {
			return fmt.Errorf("offset %d: seq %d, want %d", off, got.Seq, want.Seq)
		}
		i++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if i != n {
		t.Fatalf("%d records, want %d", i, n)
	}
}

// TestSpoolIntervalSyncWakes: under sync "interval" the spool's periodic
// fsync makes the samples durable and wakes the forwarder, without another
// append.
func TestSpoolIntervalSyncWakes(t *testing.T) {
	s, err := OpenSpool(t.TempDir(), SpoolConfig{Sync: SyncInterval, SyncInterval: 20 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Append(context.Background(), "plant-t.press", []devices.Sample{testSample("press-01", 0)}); err != nil {
		t.Fatal(err)
	}
	tp, err := s.topic("plant-t.press")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.After(20 * time.Second)
	for {
		woken := s.appended() // before looking: a wake-up in between is not missed
		if tp.log().DurableOffset() >= tp.log().EndOffset() {
			break
		}
		select {
		case <-woken:
		case <-deadline:
			t.Fatalf("durable offset %d, end %d: no fsync woke the forwarder within 20s", tp.log().DurableOffset(), tp.log().EndOffset())
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
