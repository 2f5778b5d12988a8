package commitlog

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAppendReadAcrossSegments(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, smallOptions())
	want := appendBatches(t, l, 200, 1000)
	if n := len(*l.segs.Load()); n < 10 {
		t.Fatalf("%d segments, want at least 10 with SegmentBytes 1024", n)
	}
	check := func(l *Log) {
		t.Helper()
		checkStored(t, l, want)
		// Every offset, including those inside batches, reads the batch
		// containing it.
		for off := l.StartOffset(); off < l.EndOffset(); off++ {
			data, err := l.Read(off, 1, l.EndOffset())
			if err != nil {
				t.Fatalf("Read(%d): %v", off, err)
			}
			hs := splitBatches(t, data)
			if len(hs) != 1 || hs[0].BaseOffset > off || hs[0].LastOffset() < off {
				t.Fatalf("Read(%d, 1 byte) returned %d batches, first %d..%d", off, len(hs), hs[0].BaseOffset, hs[0].LastOffset())
			}
		}
	}
	check(l)
	end := l.EndOffset()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, smallOptions())
	if l.EndOffset() != end || l.StartOffset() != 0 || l.DurableOffset() != end {
		t.Fatalf("after reopen start %d end %d durable %d, want 0, %d, %d", l.StartOffset(), l.EndOffset(), l.DurableOffset(), end, end)
	}
	check(l)
	more := appendBatches(t, l, 5, 5000)
	for base, b := range more {
		if base < end {
			t.Fatalf("append after reopen got offset %d, below the old end %d", base, end)
		}
		want[base] = b
	}
	checkStored(t, l, want)
}

// TestRead covers Read's bounds on a log of 10 batches of 3 records
// (offsets 0..29), 4 batches per segment.
func TestRead(t *testing.T) {
	batch := makeBatch(3, 20, 1)
	size := len(batch)
	l := openLog(t, t.TempDir(), Options{SegmentBytes: int64(4 * size), IndexIntervalBytes: 1})
	for range 10 {
		if _, err := l.Append(batch); err != nil {
			t.Fatal(err)
		}
	}
	if got := l.ActiveSegmentBase(); got != 24 {
		t.Fatalf("ActiveSegmentBase %d, want 24", got)
	}
	tests := []struct {
		name     string
		offset   int64
		maxBytes int
		limit    int64
		want     []int64 // base offsets of the batches returned
		err      error
	}{
		{"everything", 0, 1 << 20, 30, []int64{0, 3, 6, 9, 12, 15, 18, 21, 24, 27}, nil},
		{"limit above end is end", 0, 1 << 20, 1000, []int64{0, 3, 6, 9, 12, 15, 18, 21, 24, 27}, nil},
		{"at least one batch", 0, 1, 30, []int64{0}, nil},
		{"zero maxBytes still one batch", 12, 0, 30, []int64{12}, nil},
		{"maxBytes fits two", 0, 2 * size, 30, []int64{0, 3}, nil},
		{"maxBytes one short of two", 0, 2*size - 1, 30, []int64{0}, nil},
		{"across a segment boundary", 9, 3 * size, 30, []int64{9, 12, 15}, nil},
		{"offset inside a batch", 4, 1 << 20, 9, []int64{3, 6}, nil},
		{"last offset of a batch", 5, 1, 30, []int64{3}, nil},
		{"limit at a batch boundary", 0, 1 << 20, 9, []int64{0, 3, 6}, nil},
		{"limit inside a later batch excludes it", 0, 1 << 20, 7, []int64{0, 3}, nil},
		{"limit inside the first batch includes it", 7, 1 << 20, 8, []int64{6}, nil},
		{"limit at a segment boundary", 6, 1 << 20, 12, []int64{6, 9}, nil},
		{"offset at limit", 9, 1 << 20, 9, nil, nil},
		{"offset above limit", 12, 1 << 20, 9, nil, nil},
		{"offset at end", 30, 1 << 20, 30, nil, nil},
		{"active segment only", 25, 1 << 20, 30, []int64{24, 27}, nil},
		{"offset above end", 31, 1 << 20, 40, nil, ErrOffsetOutOfRange},
		{"negative offset", -1, 1 << 20, 30, nil, ErrOffsetOutOfRange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := l.Read(tt.offset, tt.maxBytes, tt.limit)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Read error %v, want %v", err, tt.err)
			}
			if tt.want == nil {
				if data != nil {
					t.Fatalf("Read returned %d bytes, want nil", len(data))
				}
				return
			}
			var got []int64
			for _, h := range splitBatches(t, data) {
				got = append(got, h.BaseOffset)
			}
			if !equalInts(got, tt.want) {
				t.Fatalf("Read returned batches at %v, want %v", got, tt.want)
			}
		})
	}
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestAppendErrors(t *testing.T) {
	l := openLog(t, t.TempDir(), Options{MaxBatchBytes: 200})
	if _, err := l.Append(makeBatch(1, 200, 1)); !errors.Is(err, ErrBatchTooLarge) {
		t.Errorf("Append of a 270-byte batch with MaxBatchBytes 200: %v, want ErrBatchTooLarge", err)
	}
	bad := makeBatch(1, 10, 1)
	bad[len(bad)-1] ^= 1
	if _, err := l.Append(bad); !errors.Is(err, ErrCRC) {
		t.Errorf("Append of a batch with a bad CRC: %v, want ErrCRC", err)
	}
	if _, err := l.Append(makeBatch(1, 10, 1)[:50]); !errors.Is(err, ErrBatchTooShort) {
		t.Errorf("Append of 50 bytes: %v, want ErrBatchTooShort", err)
	}
	if l.EndOffset() != 0 {
		t.Fatalf("rejected appends moved EndOffset to %d", l.EndOffset())
	}
	if _, err := l.Append(makeBatch(1, 10, 1)); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := l.Append(makeBatch(1, 10, 1)); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: %v, want ErrClosed", err)
	}
	if _, err := l.Read(0, 100, 1); !errors.Is(err, ErrClosed) {
		t.Errorf("Read after Close: %v, want ErrClosed", err)
	}
	if err := l.Sync(5); !errors.Is(err, ErrClosed) {
		t.Errorf("Sync after Close: %v, want ErrClosed", err)
	}
	if _, err := l.Retain(); !errors.Is(err, ErrClosed) {
		t.Errorf("Retain after Close: %v, want ErrClosed", err)
	}
	if err := l.SetOptions(Options{}); !errors.Is(err, ErrClosed) {
		t.Errorf("SetOptions after Close: %v, want ErrClosed", err)
	}
}

// TestAppendLeavesCallerSlice checks that Append assigns offsets without
// writing to the caller's batch, for a batch copied into the write buffer
// and for one written in two parts.
func TestAppendLeavesCallerSlice(t *testing.T) {
	for _, valueSize := range []int{10, maxScratch} {
		l := openLog(t, t.TempDir(), Options{})
		b := withBase(makeBatch(2, valueSize, 5), 999)
		orig := bytes.Clone(b)
		for want := int64(0); want < 6; want += 2 {
			base, err := l.Append(b)
			if err != nil {
				t.Fatal(err)
			}
			if base != want {
				t.Fatalf("Append returned %d, want %d", base, want)
			}
		}
		if !bytes.Equal(b, orig) {
			t.Fatalf("value size %d: Append modified the caller's slice", valueSize)
		}
		checkStored(t, l, map[int64][]byte{0: withBase(b, 0), 2: withBase(b, 2), 4: withBase(b, 4)})
	}
}

func TestSyncAndDurableOffset(t *testing.T) {
	l := openLog(t, t.TempDir(), Options{})
	appendBatches(t, l, 3, 1)
	end := l.EndOffset()
	if l.DurableOffset() != 0 {
		t.Fatalf("DurableOffset %d before any Sync, want 0", l.DurableOffset())
	}
	if err := l.Sync(end + 100); err != nil {
		t.Fatal(err)
	}
	if l.DurableOffset() != end {
		t.Fatalf("DurableOffset %d after Sync, want %d", l.DurableOffset(), end)
	}
	if err := l.Sync(1); err != nil {
		t.Fatal(err)
	}
}

// TestOnSync checks that Options.OnSync hears of every fsync of segment
// data, those of Sync and of a roll, and of no Sync that needed none.
func TestOnSync(t *testing.T) {
	var calls int
	var total time.Duration
	opts := Options{SegmentBytes: 1024, OnSync: func(d time.Duration) { calls++; total += d }}
	l := openLog(t, t.TempDir(), opts)
	appendBatches(t, l, 1, 1)
	if err := l.Sync(l.EndOffset()); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("OnSync called %d times after one Sync, want 1", calls)
	}
	if err := l.Sync(l.EndOffset()); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("OnSync called %d times after a Sync with nothing to fsync, want 1", calls)
	}
	// Batches of up to a few hundred bytes in 1 KiB segments: each
	// roll fsyncs the segment it seals.
	before := len(l.SegmentBases())
	appendBatches(t, l, 20, 2)
	rolls := len(l.SegmentBases()) - before
	if rolls == 0 || calls != 1+rolls {
		t.Fatalf("OnSync called %d times after %d rolls, want %d", calls, rolls, 1+rolls)
	}
	if total <= 0 {
		t.Fatalf("OnSync durations add up to %v", total)
	}
}

// TestOffsetForTime compares OffsetForTime with a brute-force answer on a log
// whose timestamps go up and down, repeat, and are sometimes missing, while
// the log is open, after a clean reopen and after an unclean one.
func TestOffsetForTime(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentBytes: 2048, IndexIntervalBytes: 150}
	l := openLog(t, dir, opts)
	rng := rand.New(rand.NewPCG(7, 7))
	type batchTS struct{ base, maxTS int64 }
	var batches []batchTS
	for i := range 300 {
		ts := int64(1000 + i*10 + rng.IntN(200) - 100) // mostly increasing, some going back
		switch rng.IntN(10) {
		case 0:
			ts = -1 // no timestamp
		case 1:
			if len(batches) > 0 {
				ts = batches[len(batches)-1].maxTS // a repeated timestamp
			}
		}
		base, err := l.Append(makeBatch(1+rng.IntN(4), 20, ts))
		if err != nil {
			t.Fatal(err)
		}
		batches = append(batches, batchTS{base, ts})
	}
	queries := []int64{-5, -1, 0, 1, 999, 5000, 4000, 1 << 50}
	for _, b := range batches {
		queries = append(queries, b.maxTS-1, b.maxTS, b.maxTS+1)
	}
	check := func(l *Log, when string) {
		t.Helper()
		for _, ts := range queries {
			want, wantOK := int64(0), false
			for _, b := range batches {
				if b.maxTS >= ts {
					want, wantOK = b.base, true
					break
				}
			}
			got, ok, err := l.OffsetForTime(ts)
			if err != nil {
				t.Fatalf("%s: OffsetForTime(%d): %v", when, ts, err)
			}
			if ok != wantOK || got != want {
				t.Fatalf("%s: OffsetForTime(%d) = %d, %v; want %d, %v", when, ts, got, ok, want, wantOK)
			}
		}
	}
	check(l, "open")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, opts)
	check(l, "after clean reopen")
	crashLog(l)
	os.Remove(filepath.Join(dir, recoveryPointName))
	l = openLog(t, dir, opts)
	check(l, "after unclean reopen")
}

func TestBatches(t *testing.T) {
	l := openLog(t, t.TempDir(), smallOptions())
	stored := appendBatches(t, l, 60, 1)
	var all []BatchHeader
	if err := l.Batches(0, func(h BatchHeader) error { all = append(all, h); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(all) != len(stored) {
		t.Fatalf("Batches visited %d batches, want %d", len(all), len(stored))
	}
	for i, h := range all {
		want, _ := ParseBatch(stored[h.BaseOffset])
		if h != want {
			t.Fatalf("batch %d: header %+v, want %+v", i, h, want)
		}
		if i > 0 && h.BaseOffset != all[i-1].LastOffset()+1 {
			t.Fatalf("batch %d at %d does not follow %d", i, h.BaseOffset, all[i-1].LastOffset())
		}
	}
	mid := all[len(all)/2]
	tests := []struct {
		name  string
		from  int64
		first int64 // base offset of the first batch visited; -1 for none
	}{
		{"below start", -10, 0},
		{"a batch's base", mid.BaseOffset, mid.BaseOffset},
		{"inside a batch", mid.LastOffset(), mid.BaseOffset},
		{"active segment", l.ActiveSegmentBase(), l.ActiveSegmentBase()},
		{"end", l.EndOffset(), -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first := int64(-1)
			n := 0
			err := l.Batches(tt.from, func(h BatchHeader) error {
				if n == 0 {
					first = h.BaseOffset
				}
				n++
				return nil
			})
			if err != nil || first != tt.first {
				t.Fatalf("Batches(%d) started at %d (err %v), want %d", tt.from, first, err, tt.first)
			}
		})
	}
	stop := errors.New("stop")
	n := 0
	err := l.Batches(0, func(BatchHeader) error { n++; return stop })
	if err != stop || n != 1 {
		t.Fatalf("Batches with fn failing: %v after %d calls, want the error after 1", err, n)
	}
}

func TestSize(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, smallOptions())
	appendBatches(t, l, 50, 1)
	var want int64
	for _, name := range segmentFiles(t, dir) {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		want += fi.Size()
	}
	if got := l.Size(); got != want || got == 0 {
		t.Fatalf("Size %d, want %d (the .log files on disk)", got, want)
	}
}

func TestOptions(t *testing.T) {
	d := Options{}.WithDefaults()
	if d.SegmentBytes != 1<<30 || d.SegmentAge != 7*24*time.Hour || d.RetentionAge != 7*24*time.Hour ||
		d.RetentionBytes != -1 || d.IndexIntervalBytes != 4096 || d.Flush != FlushAlways ||
		d.FlushInterval != time.Second || d.MaxBatchBytes != 1048588 || d.FS != OSFS || d.Now == nil || d.Logger == nil {
		t.Fatalf("WithDefaults = %+v", d)
	}
	if o := (Options{RetentionAge: -1, SegmentBytes: 5}).WithDefaults(); o.RetentionAge != -1 || o.SegmentBytes != 5 {
		t.Fatalf("WithDefaults changed set fields: %+v", o)
	}
	tests := []struct {
		name  string
		opts  Options
		field string
	}{
		{"segment too large", Options{SegmentBytes: 1 << 31}, "SegmentBytes"},
		{"negative segment", Options{SegmentBytes: -5}, "SegmentBytes"},
		{"negative segment age", Options{SegmentAge: -time.Second}, "SegmentAge"},
		{"negative index interval", Options{IndexIntervalBytes: -1}, "IndexIntervalBytes"},
		{"unknown flush policy", Options{Flush: 7}, "Flush"},
		{"negative flush interval", Options{FlushInterval: -time.Second}, "FlushInterval"},
		{"max batch below a header", Options{MaxBatchBytes: 60}, "MaxBatchBytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "log")
			_, err := Open(dir, tt.opts)
			if !errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("Open: %v, want ErrInvalidOptions naming %s", err, tt.field)
			}
			if _, serr := os.Stat(dir); !os.IsNotExist(serr) {
				t.Fatalf("Open with invalid options created %s", dir)
			}
		})
	}
	if got := FlushInterval.String(); got != "interval" {
		t.Fatalf("FlushInterval.String() = %q", got)
	}
}

// TestFlushIntervalPolicy checks that under FlushInterval the Log's own
// goroutine makes appends durable, without a Sync call.
func TestFlushIntervalPolicy(t *testing.T) {
	cfs := &countingFS{FS: OSFS}
	durable := make(chan struct{}, 1)
	onDurable := func() {
		select {
		case durable <- struct{}{}:
		default:
		}
	}
	l := openLog(t, t.TempDir(), Options{Flush: FlushInterval, FlushInterval: time.Millisecond, FS: cfs, OnDurable: onDurable})
	appendBatches(t, l, 3, 1)
	for l.DurableOffset() < l.EndOffset() {
		time.Sleep(time.Millisecond) // polling, not a deadline: the test timeout bounds it
	}
	if cfs.logSyncs.Load() == 0 {
		t.Fatal("durable without an fsync")
	}
	select {
	case <-durable:
	default:
		t.Fatal("the goroutine's fsync made the batches durable without calling OnDurable")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestDelete(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "topic-0")
	l := openLog(t, dir, smallOptions())
	appendBatches(t, l, 20, 1)
	if err := l.Delete(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("directory still exists after Delete: %v", err)
	}
	if _, err := l.Append(makeBatch(1, 1, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Delete: %v, want ErrClosed", err)
	}
	if err := l.Delete(); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
}
