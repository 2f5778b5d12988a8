package commitlog

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkRepaired opens the repaired log and checks that it holds every
// stored batch outside the lost offsets byte for byte, and in their place
// one empty placeholder batch, or nothing when the log was truncated there.
func checkRepaired(t *testing.T, dir string, opts Options, stored map[int64][]byte, lost []wantRange) {
	t.Helper()
	l := openLog(t, dir, opts)
	got := readAll(t, l, 1<<20)
	inLost := func(first, last int64) *wantRange {
		for i := range lost {
			if first <= lost[i].last && last >= lost[i].first {
				return &lost[i]
			}
		}
		return nil
	}
	for base, b := range stored {
		if inLost(base, decodeHeader(b).LastOffset()) != nil {
			continue
		}
		if !bytes.Equal(got[base], b) {
			t.Fatalf("batch %d differs after the repair (or is missing)", base)
		}
		delete(got, base)
	}
	for _, w := range lost {
		switch {
		case w.atEnd:
			if l.EndOffset() != w.first {
				t.Fatalf("log ends at %d after truncation, want %d", l.EndOffset(), w.first)
			}
		case w.last >= w.first:
			h, err := ParseBatch(got[w.first])
			if err != nil || h.NumRecords != 0 || h.LastOffset() != w.last || h.ProducerID != -1 {
				t.Fatalf("placeholder at %d: %+v, %v; want an empty batch through offset %d", w.first, h, err, w.last)
			}
			delete(got, w.first)
		}
	}
	if len(got) != 0 {
		t.Fatalf("the repaired log holds %d unexpected batches", len(got))
	}
	// It takes appends after its end.
	end := l.EndOffset()
	if base, err := l.Append(makeBatch(2, 5, 5000)); err != nil || base != end {
		t.Fatalf("Append after repair: %d, %v; want %d", base, err, end)
	}
}

func TestRepair(t *testing.T) {
	for _, c := range damageCases() {
		t.Run(c.name, func(t *testing.T) {
			dir, stored, segs := damageFixture(t)
			w := c.damage(t, segs)
			raw, err := os.ReadFile(w.segment)
			if err != nil {
				t.Fatal(err)
			}
			damaged := raw[w.start:w.end]

			// A dry run says what it would do and changes nothing.
			before := snapshotDir(t, dir)
			dry, err := Repair(dir, RepairOptions{DryRun: true})
			if err != nil {
				t.Fatal(err)
			}
			if !dry.DryRun || dry.Changed || len(dry.Ranges) != 1 || !equalSnapshots(before, snapshotDir(t, dir)) {
				t.Fatalf("dry run: %+v, or it changed the directory", dry)
			}

			rep, err := Repair(dir, RepairOptions{Log: smallOptions()})
			if err != nil {
				t.Fatal(err)
			}
			if !rep.Changed || len(rep.Ranges) != 1 {
				t.Fatalf("repair report: changed %v, %d ranges", rep.Changed, len(rep.Ranges))
			}
			rr := rep.Ranges[0]
			checkRange(t, rr.DamagedRange, w)
			if rr.Quarantine != dry.Ranges[0].Quarantine {
				t.Fatalf("quarantine %q, the dry run said %q", rr.Quarantine, dry.Ranges[0].Quarantine)
			}
			wantPlaceholders := 0
			if !w.atEnd && w.last >= w.first {
				wantPlaceholders = 1
			}
			if rr.Truncated != w.atEnd || rr.Placeholders != wantPlaceholders {
				t.Fatalf("truncated %v, %d placeholders; want %v, %d", rr.Truncated, rr.Placeholders, w.atEnd, wantPlaceholders)
			}
			if len(damaged) == 0 {
				if rr.Quarantine != "" {
					t.Fatalf("quarantine file %q for an empty range", rr.Quarantine)
				}
			} else {
				q, err := os.ReadFile(rr.Quarantine)
				if err != nil || !bytes.Equal(q, damaged) {
					t.Fatalf("quarantine file %s: %d bytes, %v; want the %d damaged bytes", rr.Quarantine, len(q), err, len(damaged))
				}
				if want := w.segment + ".quarantine-"; !strings.HasPrefix(rr.Quarantine, want) {
					t.Fatalf("quarantine file %s, want a name starting %s", rr.Quarantine, want)
				}
			}
			if r, err := Scrub(context.Background(), dir, ScrubOptions{}); err != nil || !r.OK() {
				t.Fatalf("scrub after repair: %v, %+v", err, r.Damaged())
			}
			if w.atEnd && rep.EndOffset != w.first {
				t.Fatalf("report says the log ends at %d, want %d", rep.EndOffset, w.first)
			}

			// Idempotent: a second repair finds nothing to do.
			again, err := Repair(dir, RepairOptions{Log: smallOptions()})
			if err != nil || again.Changed || len(again.Ranges) != 0 {
				t.Fatalf("second repair: %+v, %v", again, err)
			}
			checkRepaired(t, dir, smallOptions(), stored, []wantRange{w})
		})
	}
}

// TestRepairHealthyLog checks that a healthy log is left untouched, clean
// shutdown marker included.
func TestRepairHealthyLog(t *testing.T) {
	dir, stored, _ := damageFixture(t)
	before := snapshotDir(t, dir)
	rep, err := Repair(dir, RepairOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Changed || len(rep.Ranges) != 0 || !rep.Scrub.OK() {
		t.Fatalf("repair of a healthy log: %+v", rep)
	}
	if !equalSnapshots(before, snapshotDir(t, dir)) {
		t.Fatal("repair of a healthy log changed its directory")
	}
	if _, err := os.Stat(filepath.Join(dir, cleanShutdownName)); err != nil {
		t.Fatalf("clean-shutdown marker: %v", err)
	}
	checkRepaired(t, dir, smallOptions(), stored, nil)
}

// TestRepairSeveralRanges repairs damage in two segments at once, the
// active segment's tail included, and a quarantine file name that is taken.
func TestRepairSeveralRanges(t *testing.T) {
	dir, stored, segs := damageFixture(t)
	n := len(layoutOf(t, segs[1]))
	active := segs[len(segs)-1]
	tail := flipRecords(t, active, len(layoutOf(t, active))-1)
	tail.atEnd = true
	want := []wantRange{flipRecords(t, segs[1], 0), flipRecords(t, segs[1], n-1), flipRecords(t, segs[2], 1), tail}
	taken := want[0].segment + ".quarantine-" + "0"
	if err := os.WriteFile(taken, []byte("an operator's file"), 0o644); err != nil {
		t.Fatal(err)
	}
	dry, err := Repair(dir, RepairOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Repair(dir, RepairOptions{Log: smallOptions(), BufferBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Ranges) != len(want) || len(dry.Ranges) != len(want) {
		t.Fatalf("%d ranges repaired, want %d", len(rep.Ranges), len(want))
	}
	for i := range want {
		checkRange(t, rep.Ranges[i].DamagedRange, want[i])
	}
	if q, dq := rep.Ranges[0].Quarantine, dry.Ranges[0].Quarantine; q != taken+".2" || dq != q {
		t.Fatalf("quarantine file %s (dry run: %s), want %s.2 beside the operator's file", q, dq, taken)
	}
	if b, _ := os.ReadFile(taken); string(b) != "an operator's file" {
		t.Fatal("repair overwrote a file")
	}
	checkRepaired(t, dir, smallOptions(), stored, want)
}

// TestRepairUncleanLog repairs a log whose broker crashed: no clean-shutdown
// marker, and a recovery point past the damage.
func TestRepairUncleanLog(t *testing.T) {
	dir, stored, segs := damageFixture(t)
	w := flipRecords(t, segs[1], 1)
	if err := os.Remove(filepath.Join(dir, cleanShutdownName)); err != nil {
		t.Fatal(err)
	}
	if err := writeRecoveryPoint(OSFS, dir, segmentBaseOf(t, segs[len(segs)-1])); err != nil {
		t.Fatal(err)
	}
	if _, err := Repair(dir, RepairOptions{Log: smallOptions()}); err != nil {
		t.Fatal(err)
	}
	checkRepaired(t, dir, smallOptions(), stored, []wantRange{w})
}

func segmentBaseOf(t testing.TB, name string) int64 {
	t.Helper()
	base, ok := parseSegmentName(filepath.Base(name), logSuffix)
	if !ok {
		t.Fatalf("%s is not a segment file", name)
	}
	return base
}

// errRepairCut is what every file operation returns after a simulated
// power cut during a repair.
var errRepairCut = errors.New("power cut during repair")

// TestRepairCrash cuts the power at every file operation of a repair in
// turn, crashes the file system (dropping or tearing what was not synced),
// and repairs again: the second repair must succeed and the log must hold
// every batch outside the damaged ranges, and the quarantine files their
// bytes.
func TestRepairCrash(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 3))
	const dir = "/data/p-0"
	var (
		stored  map[int64][]byte
		want    []wantRange
		damaged [][]byte
	)
	setup := func() *memFS {
		mfs := newMemFS()
		opts := smallOptions()
		opts.FS = mfs
		l, err := Open(dir, opts)
		if err != nil {
			t.Fatal(err)
		}
		stored = appendBatches(t, l, 30, 1000)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		bases, err := listSegments(mfs, dir)
		if err != nil || len(bases) < 3 {
			t.Fatalf("%d segments, %v", len(bases), err)
		}
		want, damaged = nil, nil
		for _, base := range []int64{bases[1], bases[len(bases)-1]} {
			name := filepath.Join(dir, segmentName(base, logSuffix))
			raw := memRead(t, mfs, name)
			var bs []batchAt
			for p := 0; p < len(raw); {
				h := decodeHeader(raw[p:])
				bs = append(bs, batchAt{int64(p), h})
				p += h.Size()
			}
			b := bs[len(bs)-1] // the last batch: a placeholder, then a truncation
			raw[b.pos+int64(b.h.Size())-1] ^= 0xff
			mfs.writeFile(t, name, raw)
			want = append(want, wantRange{segment: name, start: b.pos, end: int64(len(raw)), first: b.h.BaseOffset, last: b.h.LastOffset(),
				atEnd: base == bases[len(bases)-1], err: ErrCRC, claimed: int64(b.h.NumRecords)})
			damaged = append(damaged, raw[b.pos:])
		}
		return mfs
	}
	completed := false
	for cut := 0; cut < 1000 && !completed; cut++ {
		mfs := setup()
		left := cut
		mfs.setFail(func(string, string) error {
			if left == 0 {
				return errRepairCut
			}
			left--
			return nil
		})
		opts := RepairOptions{Log: Options{FS: mfs, SegmentBytes: 1024, IndexIntervalBytes: 100}}
		if _, err := Repair(dir, opts); err == nil {
			completed = true
		} else if !errors.Is(err, errRepairCut) {
			t.Fatalf("cut %d: repair failed with %v", cut, err)
		}
		mfs.setFail(nil)
		if cut%2 == 0 {
			mfs.crash(rng)
		} else {
			mfs.crash(nil)
		}
		if _, err := Repair(dir, opts); err != nil {
			t.Fatalf("cut %d: repair after the crash: %v", cut, err)
		}
		if r, err := Scrub(context.Background(), dir, ScrubOptions{FS: mfs}); err != nil || !r.OK() {
			t.Fatalf("cut %d: scrub after repair: %v %+v", cut, err, r)
		}
		for i, w := range want {
			if !hasQuarantine(t, mfs, dir, damaged[i]) {
				t.Fatalf("cut %d: no quarantine file holds the damaged bytes of %s at %d", cut, w.segment, w.start)
			}
		}
		checkRepairedFS(t, dir, Options{FS: mfs, SegmentBytes: 1024, IndexIntervalBytes: 100}, stored, want)
	}
	if !completed {
		t.Fatal("the repair never ran to the end without a cut")
	}
}

// checkRepairedFS is checkRepaired for a log on another FS, in a subtest
// so that its log is closed before the next iteration.
func checkRepairedFS(t *testing.T, dir string, opts Options, stored map[int64][]byte, lost []wantRange) {
	t.Helper()
	ok := t.Run("check", func(t *testing.T) { checkRepaired(t, dir, opts, stored, lost) })
	if !ok {
		t.FailNow()
	}
}

func memRead(t testing.TB, mfs *memFS, name string) []byte {
	t.Helper()
	f, err := mfs.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, fi.Size())
	if err := readFull(f, b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

// hasQuarantine reports whether a quarantine file in dir holds data.
func hasQuarantine(t testing.TB, mfs *memFS, dir string, data []byte) bool {
	t.Helper()
	entries, err := mfs.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), quarantineInfix) && !strings.HasSuffix(e.Name(), repairTmpSuffix) &&
			bytes.Equal(memRead(t, mfs, filepath.Join(dir, e.Name())), data) {
			return true
		}
	}
	return false
}

// FuzzRepair writes the fuzz input as the only segment of a log and
// scrubs and repairs it. Scrub must report ordered ranges inside the file;
// Repair must succeed, after which the log scrubs clean and opens.
func FuzzRepair(f *testing.F) {
	var segment []byte
	for i := range 4 {
		segment = append(segment, withBase(makeBatch(1+i, 10*i, int64(i)), int64(i*(i+1)/2))...)
	}
	f.Add(segment)
	f.Add(segment[:len(segment)-5])
	f.Add(append(segment[:len(segment):len(segment)], make([]byte, 100)...))
	for _, pos := range []int{3, 8, 16, 21, 30, 70, 200} {
		flipped := bytes.Clone(segment)
		flipped[pos] ^= 0x20
		f.Add(flipped)
	}
	garbage := bytes.Clone(segment[:90])
	garbage = append(garbage, bytes.Repeat([]byte{2, 0, 0xff}, 40)...)
	f.Add(append(garbage, segment[90:]...))
	f.Add(withBase(makeBatch(2, 5, 1), 9))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		mfs := newMemFS()
		mfs.writeFile(t, "/log/"+segmentName(0, logSuffix), data)
		r, err := Scrub(context.Background(), "/log", ScrubOptions{FS: mfs, BufferBytes: minScrubBufferBytes})
		if err != nil {
			t.Fatal(err)
		}
		prevEnd := int64(0)
		for _, d := range r.Damaged() {
			if d.Start < prevEnd || d.End < d.Start || d.End > int64(len(data)) || d.Err == nil {
				t.Fatalf("range [%d, %d) after %d in a %d-byte file: %+v", d.Start, d.End, prevEnd, len(data), d)
			}
			prevEnd = d.End
		}
		opts := Options{FS: mfs, IndexIntervalBytes: 64}
		if _, err := Repair("/log", RepairOptions{Log: opts, BufferBytes: minScrubBufferBytes}); err != nil {
			t.Fatalf("repair: %v", err)
		}
		if r, err := Scrub(context.Background(), "/log", ScrubOptions{FS: mfs}); err != nil || !r.OK() {
			t.Fatalf("scrub after repair: %v %+v", err, r)
		}
		l, err := Open("/log", opts)
		if err != nil {
			t.Fatalf("open after repair: %v", err)
		}
		defer l.Close()
		readAll(t, l, 100)
	})
}
