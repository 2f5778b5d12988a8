package commitlog

import (
	"errors"
	"os"
	"testing"
	"time"
)

func TestRetainBytes(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentBytes: 1024, RetentionBytes: 3000, RetentionAge: -1}
	l := openLog(t, dir, opts)
	stored := appendBatches(t, l, 100, 1)
	before := len(*l.segs.Load())
	deleted, err := l.Retain()
	if err != nil {
		t.Fatal(err)
	}
	segs := *l.segs.Load()
	if deleted == 0 || deleted+len(segs) != before {
		t.Fatalf("Retain deleted %d of %d segments, %d remain", deleted, before, len(segs))
	}
	if size := l.Size(); size < 3000 || size-segs[0].size.Load() >= 3000 {
		t.Fatalf("after Retain the log is %d bytes and its oldest segment %d: want the smallest log of at least 3000 bytes",
			size, segs[0].size.Load())
	}
	start := l.StartOffset()
	if start != segs[0].base || start == 0 {
		t.Fatalf("StartOffset %d, want the first remaining segment's base %d", start, segs[0].base)
	}
	if _, err := l.Read(start-1, 100, l.EndOffset()); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("Read below StartOffset: %v, want ErrOffsetOutOfRange", err)
	}
	if files := segmentFiles(t, dir); len(files) != len(segs) {
		t.Fatalf("%d .log files on disk, want %d", len(files), len(segs))
	}
	for base := range stored {
		if base < start {
			delete(stored, base)
		}
	}
	checkStored(t, l, stored)
	if n, err := l.Retain(); n != 0 || err != nil {
		t.Fatalf("second Retain deleted %d (err %v), want 0", n, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, opts)
	if l.StartOffset() != start {
		t.Fatalf("StartOffset after reopen %d, want %d", l.StartOffset(), start)
	}
	checkStored(t, l, stored)
}

func TestRetainNeverDeletesActiveSegment(t *testing.T) {
	l := openLog(t, t.TempDir(), Options{SegmentBytes: 1 << 20, RetentionBytes: 1, RetentionAge: -1})
	appendBatches(t, l, 10, 1)
	if err := l.Sync(l.EndOffset()); err != nil {
		t.Fatal(err)
	}
	if n, err := l.Retain(); n != 0 || err != nil {
		t.Fatalf("Retain deleted %d (err %v), want 0: there is only the active segment", n, err)
	}
	if l.StartOffset() != 0 {
		t.Fatalf("StartOffset %d, want 0", l.StartOffset())
	}
}

func TestRetainAge(t *testing.T) {
	clock := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	t0 := clock.t
	l := openLog(t, t.TempDir(), Options{SegmentBytes: 1024, RetentionAge: time.Hour, Now: clock.Now})
	appendBatches(t, l, 30, t0.UnixMilli())
	clock.Advance(30 * time.Minute)
	appendBatches(t, l, 30, clock.t.UnixMilli())
	if err := l.Sync(l.EndOffset()); err != nil {
		t.Fatal(err)
	}

	clock.t = t0.Add(time.Hour + 10*time.Minute) // the first batches expired
	deleted, err := l.Retain()
	if err != nil {
		t.Fatal(err)
	}
	if deleted == 0 {
		t.Fatal("Retain deleted nothing")
	}
	segs := *l.segs.Load()
	for _, s := range segs[:len(segs)-1] {
		if ts := s.maxTS.Load(); ts < clock.t.Add(-time.Hour).UnixMilli() {
			t.Fatalf("segment %d with max timestamp %d survived retention", s.base, ts)
		}
	}
	if segs[0].base == 0 || l.StartOffset() != segs[0].base {
		t.Fatalf("StartOffset %d, first segment %d", l.StartOffset(), segs[0].base)
	}

	// Everything is now expired; the active segment rolls only once its
	// data is durable.
	clock.t = t0.Add(3 * time.Hour)
	appendBatches(t, l, 1, t0.UnixMilli())
	if _, err := l.Retain(); err != nil {
		t.Fatal(err)
	}
	if end := l.EndOffset(); l.StartOffset() == end || l.ActiveSegmentBase() == end {
		t.Fatalf("Retain rolled and deleted an active segment that was not durable")
	}
	if err := l.Sync(l.EndOffset()); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Retain(); err != nil {
		t.Fatal(err)
	}
	end := l.EndOffset()
	if l.StartOffset() != end || l.ActiveSegmentBase() != end || l.Size() != 0 {
		t.Fatalf("after Retain of a fully expired log: start %d, active %d, size %d; want %d, %d, 0",
			l.StartOffset(), l.ActiveSegmentBase(), l.Size(), end, end)
	}
	if data, err := l.Read(end, 100, end); data != nil || err != nil {
		t.Fatalf("Read at the end of an emptied log: %d bytes, %v", len(data), err)
	}
	if base, err := l.Append(makeBatch(1, 1, clock.t.UnixMilli())); base != end || err != nil {
		t.Fatalf("Append after retention got %d (err %v), want %d", base, err, end)
	}
}

// TestRetainModTime checks that segments without timestamps age by their
// file's modification time.
func TestRetainModTime(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{SegmentBytes: 1024, RetentionAge: time.Hour})
	for range 60 {
		if _, err := l.Append(makeBatch(2, 30, noTimestamp)); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := l.Retain(); n != 0 || err != nil {
		t.Fatalf("Retain of fresh files deleted %d (err %v)", n, err)
	}
	files := segmentFiles(t, dir)
	if len(files) < 4 {
		t.Fatalf("%d segments, want at least 4", len(files))
	}
	old := time.Now().Add(-2 * time.Hour)
	for _, f := range files[:2] {
		if err := os.Chtimes(f, old, old); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := l.Retain(); n != 2 || err != nil {
		t.Fatalf("Retain deleted %d segments (err %v), want the 2 with old files", n, err)
	}
}

func TestSegmentAge(t *testing.T) {
	clock := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	dir := t.TempDir()
	opts := Options{SegmentAge: 10 * time.Minute, Now: clock.Now}
	l := openLog(t, dir, opts)
	appendBatches(t, l, 2, clock.t.UnixMilli())
	clock.Advance(5 * time.Minute)
	appendBatches(t, l, 1, clock.t.UnixMilli())
	if l.ActiveSegmentBase() != 0 {
		t.Fatalf("rolled before SegmentAge")
	}
	clock.Advance(6 * time.Minute)
	end := l.EndOffset()
	if base, err := l.Append(makeBatch(1, 1, clock.t.UnixMilli())); err != nil || base != end {
		t.Fatal(err)
	}
	if l.ActiveSegmentBase() != end {
		t.Fatalf("Append after SegmentAge did not roll: active segment %d, want %d", l.ActiveSegmentBase(), end)
	}

	clock.Advance(11 * time.Minute)
	if n, err := l.Retain(); n != 0 || err != nil {
		t.Fatalf("Retain: %d, %v", n, err)
	}
	if l.ActiveSegmentBase() != l.EndOffset() {
		t.Fatal("Retain did not roll the active segment past SegmentAge")
	}

	// After a reopen the age counts from the first batch's timestamp.
	appendBatches(t, l, 1, clock.t.UnixMilli())
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	clock.Advance(11 * time.Minute)
	l = openLog(t, dir, opts)
	end = l.EndOffset()
	appendBatches(t, l, 1, clock.t.UnixMilli())
	if l.ActiveSegmentBase() != end {
		t.Fatalf("Append after reopen did not roll a segment whose first batch is older than SegmentAge")
	}
}

func TestSetOptions(t *testing.T) {
	l := openLog(t, t.TempDir(), Options{})
	appendBatches(t, l, 20, 1)
	if n := len(*l.segs.Load()); n != 1 {
		t.Fatalf("%d segments with the default SegmentBytes", n)
	}
	if err := l.SetOptions(Options{SegmentBytes: 300, RetentionBytes: 600, RetentionAge: -1}); err != nil {
		t.Fatal(err)
	}
	appendBatches(t, l, 20, 1)
	if n := len(*l.segs.Load()); n < 5 {
		t.Fatalf("%d segments after lowering SegmentBytes to 300, want more", n)
	}
	if n, err := l.Retain(); n == 0 || err != nil {
		t.Fatalf("Retain after setting RetentionBytes deleted %d (err %v)", n, err)
	}
	if err := l.SetOptions(Options{SegmentBytes: -1}); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("SetOptions with SegmentBytes -1: %v, want ErrInvalidOptions", err)
	}
	l.mu.Lock()
	got := l.opts
	l.mu.Unlock()
	if got.SegmentBytes != 300 || got.RetentionBytes != 600 || got.RetentionAge != -1 {
		t.Fatalf("options after a rejected SetOptions: %+v", got)
	}
}

func TestDeleteBefore(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentBytes: 1024, RetentionAge: -1}
	l := openLog(t, dir, opts)
	stored := appendBatches(t, l, 100, 1)
	segs := *l.segs.Load()
	if len(segs) < 4 {
		t.Fatalf("want at least 4 segments, have %d", len(segs))
	}
	// An offset inside the third segment deletes the first two only.
	cut := segs[2].base + 1
	if n, err := l.DeleteBefore(cut); n != 2 || err != nil {
		t.Fatalf("DeleteBefore(%d) deleted %d (err %v), want 2", cut, n, err)
	}
	if start := l.StartOffset(); start != segs[2].base {
		t.Fatalf("StartOffset %d, want %d", start, segs[2].base)
	}
	for base := range stored {
		if base < segs[2].base {
			delete(stored, base)
		}
	}
	checkStored(t, l, stored)
	// Past the end: every closed segment goes, the active one stays.
	if _, err := l.DeleteBefore(l.EndOffset() + 100); err != nil {
		t.Fatal(err)
	}
	if left := *l.segs.Load(); len(left) != 1 || left[0] != l.active {
		t.Fatalf("%d segments left, want only the active one", len(left))
	}
	if files := segmentFiles(t, dir); len(files) != 1 {
		t.Fatalf("%d .log files on disk, want 1", len(files))
	}
}
