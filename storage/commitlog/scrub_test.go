package commitlog

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// batchAt is a batch of a segment file: its byte position and header.
type batchAt struct {
	pos int64
	h   BatchHeader
}

// layoutOf returns the batches of a valid segment file.
func layoutOf(t testing.TB, name string) []batchAt {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var bs []batchAt
	for p := 0; p < len(b); {
		h := decodeHeader(b[p:])
		bs = append(bs, batchAt{int64(p), h})
		p += h.Size()
	}
	return bs
}

// damageFixture creates a cleanly closed log with several closed segments
// of 1024 bytes or less and an active segment of more than 10 batches, and
// returns its directory, its batches by base offset, and its segment files.
func damageFixture(t testing.TB) (string, map[int64][]byte, []string) {
	t.Helper()
	dir := t.TempDir()
	l, err := Open(dir, smallOptions())
	if err != nil {
		t.Fatal(err)
	}
	stored := appendBatches(t, l, 40, 1000)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// A larger SegmentBytes lets the active segment grow.
	if l, err = Open(dir, Options{SegmentBytes: 1 << 20, IndexIntervalBytes: 100}); err != nil {
		t.Fatal(err)
	}
	for base, b := range appendBatches(t, l, 12, 2000) {
		stored[base] = b
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	segs := segmentFiles(t, dir)
	if len(segs) < 4 || len(layoutOf(t, segs[1])) < 4 || len(layoutOf(t, segs[len(segs)-1])) < 10 {
		t.Fatalf("fixture has %d segments, %d batches in the second, %d in the active one",
			len(segs), len(layoutOf(t, segs[1])), len(layoutOf(t, segs[len(segs)-1])))
	}
	return dir, stored, segs
}

// wantRange is the damaged range a damage case must be reported as.
type wantRange struct {
	segment     string
	start, end  int64
	first, last int64
	atEnd       bool
	err         error // the sentinel the CorruptionError wraps
	claimed     int64
}

// damageCase damages a damageFixture's files and says what a scrub must
// report.
type damageCase struct {
	name   string
	damage func(t *testing.T, segs []string) wantRange
}

func fileSizeOf(t testing.TB, name string) int64 {
	t.Helper()
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// flipRecords damages the last byte of the records of batch k of a
// segment, and returns the range that one damaged batch makes.
func flipRecords(t *testing.T, name string, k int) wantRange {
	bs := layoutOf(t, name)
	b := bs[k]
	flipByte(t, name, b.pos+int64(b.h.Size())-1)
	w := wantRange{segment: name, start: b.pos, first: b.h.BaseOffset, last: b.h.LastOffset(), err: ErrCRC, claimed: int64(b.h.NumRecords)}
	if k+1 < len(bs) {
		w.end = bs[k+1].pos
	} else {
		w.end = fileSizeOf(t, name)
	}
	return w
}

func damageCases() []damageCase {
	closed := func(segs []string) string { return segs[1] }
	active := func(segs []string) string { return segs[len(segs)-1] }
	return []damageCase{
		{"closed segment middle", func(t *testing.T, segs []string) wantRange {
			return flipRecords(t, closed(segs), len(layoutOf(t, closed(segs)))/2)
		}},
		{"closed segment first batch", func(t *testing.T, segs []string) wantRange {
			return flipRecords(t, closed(segs), 0)
		}},
		{"closed segment last batch", func(t *testing.T, segs []string) wantRange {
			return flipRecords(t, closed(segs), len(layoutOf(t, closed(segs)))-1)
		}},
		{"spanning two batches", func(t *testing.T, segs []string) wantRange {
			name := closed(segs)
			bs := layoutOf(t, name)
			k := len(bs) / 2
			w := flipRecords(t, name, k)
			w2 := flipRecords(t, name, k+1)
			w.end, w.last, w.claimed = w2.end, w2.last, w.claimed+w2.claimed
			return w
		}},
		{"active segment middle", func(t *testing.T, segs []string) wantRange {
			return flipRecords(t, active(segs), len(layoutOf(t, active(segs)))/2)
		}},
		{"active segment tail", func(t *testing.T, segs []string) wantRange {
			w := flipRecords(t, active(segs), len(layoutOf(t, active(segs)))-1)
			w.atEnd = true
			return w
		}},
		{"crc field", func(t *testing.T, segs []string) wantRange {
			name := closed(segs)
			bs := layoutOf(t, name)
			k := len(bs) / 2
			w := flipRecords(t, name, k)
			flipByte(t, name, bs[k].pos+int64(bs[k].h.Size())-1) // undo
			flipByte(t, name, bs[k].pos+crcPos+1)
			return w
		}},
		{"batch length", func(t *testing.T, segs []string) wantRange {
			name := closed(segs)
			bs := layoutOf(t, name)
			k := len(bs) / 2
			w := flipRecords(t, name, k)
			flipByte(t, name, bs[k].pos+int64(bs[k].h.Size())-1) // undo
			flipByte(t, name, bs[k].pos+batchLengthPos+1)        // about 16 MB more
			w.err, w.claimed = ErrBatchLength, -1
			return w
		}},
		{"base offset", func(t *testing.T, segs []string) wantRange {
			name := closed(segs)
			bs := layoutOf(t, name)
			k := len(bs) / 2
			w := flipRecords(t, name, k)
			flipByte(t, name, bs[k].pos+int64(bs[k].h.Size())-1) // undo
			flipByte(t, name, bs[k].pos+6)                       // not covered by the CRC
			w.err = ErrOffsetSequence
			return w
		}},
		{"garbage between batches", func(t *testing.T, segs []string) wantRange {
			name := closed(segs)
			bs := layoutOf(t, name)
			k := len(bs) / 2
			garbage := bytes.Repeat([]byte{0xab}, 150)
			for i := 0; i < len(garbage); i += 7 {
				garbage[i] = batchMagic // candidates the resync must reject
			}
			raw, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			raw = append(raw[:bs[k].pos:bs[k].pos], append(garbage, raw[bs[k].pos:]...)...)
			if err := os.WriteFile(name, raw, 0o644); err != nil {
				t.Fatal(err)
			}
			first := bs[k].h.BaseOffset
			return wantRange{segment: name, start: bs[k].pos, end: bs[k].pos + 150, first: first, last: first - 1, err: ErrMagic, claimed: -1}
		}},
		{"segment ends early", func(t *testing.T, segs []string) wantRange {
			name := closed(segs)
			bs := layoutOf(t, name)
			b := bs[len(bs)-1]
			if err := os.Truncate(name, b.pos); err != nil {
				t.Fatal(err)
			}
			return wantRange{segment: name, start: b.pos, end: b.pos, first: b.h.BaseOffset, last: b.h.LastOffset(), err: ErrOffsetSequence, claimed: -1}
		}},
	}
}

// checkRange fails the test unless d is the range w describes.
func checkRange(t *testing.T, d DamagedRange, w wantRange) {
	t.Helper()
	if d.Segment != w.segment || d.Start != w.start || d.End != w.end || d.FirstOffset != w.first || d.LastOffset != w.last ||
		d.AtEnd != w.atEnd || d.ClaimedRecords != w.claimed {
		t.Fatalf("damaged range %s [%d, %d) offsets %d..%d at end %v claimed %d;\nwant %s [%d, %d) offsets %d..%d at end %v claimed %d",
			d.Segment, d.Start, d.End, d.FirstOffset, d.LastOffset, d.AtEnd, d.ClaimedRecords,
			w.segment, w.start, w.end, w.first, w.last, w.atEnd, w.claimed)
	}
	if d.Err == nil || d.Err.Segment != w.segment || d.Err.Offset != w.start || !errors.Is(d.Err, w.err) {
		t.Fatalf("range error %v, want a CorruptionError for %s at byte %d wrapping %v", d.Err, w.segment, w.start, w.err)
	}
}

func TestScrubHealthy(t *testing.T) {
	dir, stored, segs := damageFixture(t)
	var bytes int64
	for _, b := range stored {
		bytes += int64(len(b))
	}
	for _, buf := range []int{0, 1} { // default window, and the smallest
		r, err := Scrub(context.Background(), dir, ScrubOptions{BufferBytes: buf})
		if err != nil {
			t.Fatal(err)
		}
		if !r.OK() || r.Batches != int64(len(stored)) || r.Bytes != bytes || len(r.Segments) != len(segs) {
			t.Fatalf("buffer %d: OK %v, %d batches, %d bytes, %d segments; want true, %d, %d, %d",
				buf, r.OK(), r.Batches, r.Bytes, len(r.Segments), len(stored), bytes, len(segs))
		}
		for i, s := range r.Segments {
			if s.Path != segs[i] || s.Active != (i == len(segs)-1) || s.Tail != 0 || s.Skipped != nil {
				t.Fatalf("segment %d: %+v", i, s)
			}
			if i+1 < len(segs) && s.End != r.Segments[i+1].Base {
				t.Fatalf("segment %d ends at %d, the next starts at %d", i, s.End, r.Segments[i+1].Base)
			}
		}
	}
}

func TestScrubFindsDamage(t *testing.T) {
	for _, c := range damageCases() {
		t.Run(c.name, func(t *testing.T) {
			dir, stored, segs := damageFixture(t)
			w := c.damage(t, segs)
			before := snapshotDir(t, dir)
			r, err := Scrub(context.Background(), dir, ScrubOptions{})
			if err != nil {
				t.Fatal(err)
			}
			ds := r.Damaged()
			if r.OK() || len(ds) != 1 {
				t.Fatalf("scrub found %d damaged ranges, want 1: %+v", len(ds), ds)
			}
			checkRange(t, ds[0], w)
			lostBatches := 0
			for base, b := range stored {
				if h := decodeHeader(b); base <= w.last && h.LastOffset() >= w.first {
					lostBatches++
				}
			}
			if r.Batches != int64(len(stored)-lostBatches) {
				t.Fatalf("scrub checked %d valid batches, want %d", r.Batches, len(stored)-lostBatches)
			}
			if after := snapshotDir(t, dir); !equalSnapshots(before, after) {
				t.Fatal("scrub changed the log directory")
			}
		})
	}
}

// TestScrubSeveralRanges damages two batches apart in one segment and one
// in another: the scrub goes on past each and reports all three.
func TestScrubSeveralRanges(t *testing.T) {
	dir, _, segs := damageFixture(t)
	n := len(layoutOf(t, segs[1]))
	want := []wantRange{flipRecords(t, segs[1], 0), flipRecords(t, segs[1], n-1), flipRecords(t, segs[2], 1)}
	r, err := Scrub(context.Background(), dir, ScrubOptions{BufferBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	ds := r.Damaged()
	if len(ds) != len(want) {
		t.Fatalf("scrub found %d damaged ranges, want %d: %+v", len(ds), len(want), ds)
	}
	for i := range want {
		checkRange(t, ds[i], want[i])
	}
}

// TestScrubTail checks that what an interrupted append leaves at the end of
// the active segment is a tail, not damage.
func TestScrubTail(t *testing.T) {
	for _, c := range []struct {
		name string
		tail func(last []byte) []byte
	}{
		{"short header", func(last []byte) []byte { return last[:30] }},
		{"batch runs past the end", func(last []byte) []byte { return last[:len(last)-5] }},
		{"zeros", func(last []byte) []byte { return make([]byte, 200) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir, _, segs := damageFixture(t)
			name := segs[len(segs)-1]
			raw, _ := os.ReadFile(name)
			bs := layoutOf(t, name)
			tail := c.tail(bytes.Clone(raw[bs[len(bs)-1].pos:]))
			appendToFile(t, name, tail)
			r, err := Scrub(context.Background(), dir, ScrubOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if s := r.Segments[len(r.Segments)-1]; !r.OK() || s.Tail != int64(len(tail)) {
				t.Fatalf("OK %v, tail %d bytes; want true, %d: %+v", r.OK(), s.Tail, len(tail), r.Damaged())
			}
		})
	}
}

// TestScrubWhileAppending scrubs a log that another goroutine appends to,
// with batches larger than the read window: every scrub is clean.
func TestScrubWhileAppending(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{SegmentBytes: 64 << 10, IndexIntervalBytes: 1000})
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for i := range 300 {
			if _, err := l.Append(makeBatch(1+i%3, 3000, int64(i))); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	scrubs := 0
	for running := true; running; scrubs++ {
		select {
		case <-done:
			running = false
		default:
		}
		r, err := Scrub(context.Background(), dir, ScrubOptions{BufferBytes: minScrubBufferBytes})
		if err != nil {
			t.Fatal(err)
		}
		if !r.OK() {
			t.Fatalf("scrub %d of a healthy log being appended to: %+v", scrubs, r.Damaged())
		}
	}
	wg.Wait()
	r, err := Scrub(context.Background(), dir, ScrubOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() || r.Batches != 300 || r.Segments[len(r.Segments)-1].Tail != 0 {
		t.Fatalf("final scrub: OK %v, %d batches, tail %d", r.OK(), r.Batches, r.Segments[len(r.Segments)-1].Tail)
	}
}

func TestScrubCancelled(t *testing.T) {
	dir, _, _ := damageFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Scrub(ctx, dir, ScrubOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Scrub with a cancelled context: %v", err)
	}
}

func appendToFile(t testing.TB, name string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// snapshotDir returns the name and contents of every file in dir.
func snapshotDir(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]byte{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = b
	}
	return m
}

func equalSnapshots(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}

// BenchmarkScrub scrubs a healthy 64 MiB log of 16 KiB batches in 16 MiB
// segments (reported per byte scrubbed).
func BenchmarkScrub(b *testing.B) {
	dir := b.TempDir()
	l, err := Open(dir, Options{SegmentBytes: 16 << 20})
	if err != nil {
		b.Fatal(err)
	}
	batch := makeBatch(10, 1600, 1)
	for l.Size() < 64<<20 {
		if _, err := l.Append(batch); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	r, err := Scrub(context.Background(), dir, ScrubOptions{})
	if err != nil || !r.OK() {
		b.Fatal(err)
	}
	b.SetBytes(r.Bytes)
	for b.Loop() {
		if _, err := Scrub(context.Background(), dir, ScrubOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScrubResync scrubs a closed 16 MiB segment of random bytes: the
// worst case of the search for the next valid batch, which tries every
// position.
func BenchmarkScrubResync(b *testing.B) {
	dir := b.TempDir()
	garbage := make([]byte, 16<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range garbage {
		garbage[i] = byte(rng.Uint32())
	}
	if err := os.WriteFile(filepath.Join(dir, segmentName(0, logSuffix)), garbage, 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, segmentName(1<<20, logSuffix)), nil, 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(garbage)))
	for b.Loop() {
		r, err := Scrub(context.Background(), dir, ScrubOptions{})
		if err != nil || len(r.Damaged()) != 1 {
			b.Fatalf("%v, %+v", err, r)
		}
	}
}
