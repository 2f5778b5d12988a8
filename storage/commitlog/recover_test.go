package commitlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// logBuffer collects a Log's messages for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// closedLog creates a log in a new directory with at least 4 segments, the
// last (active) one holding 20 batches, closes it cleanly and returns the
// directory and what it holds. Batch i has timestamp 1000+i.
func closedLog(t *testing.T) (string, map[int64][]byte) {
	t.Helper()
	dir := t.TempDir()
	l := openLog(t, dir, smallOptions())
	stored := fillLog(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(segmentFiles(t, dir)); n < 4 {
		t.Fatalf("%d segments, want at least 4", n)
	}
	return dir, stored
}

// fillLog appends 40 batches to l, which has smallOptions, and then 20 more
// to a large active segment.
func fillLog(t *testing.T, l *Log) map[int64][]byte {
	t.Helper()
	stored := appendBatches(t, l, 40, 1000)
	if err := l.SetOptions(Options{SegmentBytes: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	if err := l.roll(); err != nil {
		t.Fatal(err)
	}
	for base, b := range appendBatches(t, l, 20, 1040) {
		stored[base] = b
	}
	return stored
}

// makeUnclean turns a cleanly closed log directory into one left by a
// crash: the clean-shutdown marker is removed, and the recovery point is
// set to rp, or removed if rp < 0 (recovery then validates every segment).
func makeUnclean(t *testing.T, dir string, rp int64) {
	t.Helper()
	if err := os.Remove(filepath.Join(dir, cleanShutdownName)); err != nil {
		t.Fatal(err)
	}
	if rp < 0 {
		if err := os.Remove(filepath.Join(dir, recoveryPointName)); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := writeRecoveryPoint(OSFS, dir, rp); err != nil {
		t.Fatal(err)
	}
}

// batchPositions returns the byte position of each batch of a segment file.
func batchPositions(t *testing.T, name string) []int64 {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var pos []int64
	for p := 0; p < len(b); p += int(binary.BigEndian.Uint32(b[p+batchLengthPos:])) + batchLengthOverhead {
		pos = append(pos, int64(p))
	}
	return pos
}

// segmentBase returns the base offset a segment file is named by.
func segmentBase(t *testing.T, name string) int64 {
	t.Helper()
	base, ok := parseSegmentName(filepath.Base(name), logSuffix)
	if !ok {
		t.Fatalf("%s is not a segment file", name)
	}
	return base
}

// headerAt returns the header of the batch at pos in a segment file.
func headerAt(t *testing.T, name string, pos int64) BatchHeader {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return decodeHeader(b[pos:])
}

func appendFile(t *testing.T, name string, data []byte) {
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

func fileSize(t *testing.T, name string) int64 {
	t.Helper()
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func TestCleanShutdown(t *testing.T) {
	dir, stored := closedLog(t)
	if _, err := os.Stat(filepath.Join(dir, cleanShutdownName)); err != nil {
		t.Fatalf("no clean-shutdown marker after Close: %v", err)
	}
	var end int64
	for _, b := range stored {
		h, _ := ParseBatch(b)
		end = max(end, h.LastOffset()+1)
	}
	if rp, err := readRecoveryPoint(OSFS, dir); err != nil || rp != end {
		t.Fatalf("recovery point %d (err %v), want EndOffset %d", rp, err, end)
	}
	indexes := map[string][]byte{}
	for _, name := range segmentFiles(t, dir) {
		for _, suffix := range []string{indexSuffix, timeIndexSuffix} {
			n := strings.TrimSuffix(name, logSuffix) + suffix
			b, err := os.ReadFile(n)
			if err != nil {
				t.Fatal(err)
			}
			indexes[n] = b
		}
	}

	var logs logBuffer
	opts := smallOptions()
	opts.Logger = logs.logger()
	l := openLog(t, dir, opts)
	if msg := logs.String(); strings.Contains(msg, "not closed cleanly") || strings.Contains(msg, "rebuilding") || strings.Contains(msg, "validating") {
		t.Fatalf("clean reopen validated or rebuilt:\n%s", msg)
	}
	if _, err := os.Stat(filepath.Join(dir, cleanShutdownName)); !os.IsNotExist(err) {
		t.Fatalf("clean-shutdown marker still present after Open: %v", err)
	}
	if l.EndOffset() != end || l.DurableOffset() != end {
		t.Fatalf("EndOffset %d DurableOffset %d, want %d", l.EndOffset(), l.DurableOffset(), end)
	}
	checkStored(t, l, stored)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for name, want := range indexes {
		if got, _ := os.ReadFile(name); !bytes.Equal(got, want) {
			t.Fatalf("%s changed across a clean reopen", name)
		}
	}
}

// TestUncleanReopen reopens a log after a process crash: the data is in the
// page cache, so recovery keeps all of it and records a new recovery point.
func TestUncleanReopen(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, smallOptions())
	stored := appendBatches(t, l, 60, 1)
	end := l.EndOffset()
	crashLog(l)
	var logs logBuffer
	opts := smallOptions()
	opts.Logger = logs.logger()
	l = openLog(t, dir, opts)
	if !strings.Contains(logs.String(), "not closed cleanly") {
		t.Fatalf("unclean reopen did not say so:\n%s", logs.String())
	}
	if l.EndOffset() != end || l.DurableOffset() != end {
		t.Fatalf("EndOffset %d DurableOffset %d, want %d", l.EndOffset(), l.DurableOffset(), end)
	}
	if rp, err := readRecoveryPoint(OSFS, dir); err != nil || rp != end {
		t.Fatalf("recovery point %d (err %v) after recovery, want %d", rp, err, end)
	}
	checkStored(t, l, stored)
}

// TestCorruption damages segments in ways that are not torn tails and
// checks the documented outcome: a *CorruptionError naming the file and the
// byte position of the invalid batch.
func TestCorruption(t *testing.T) {
	t.Run("byte flipped in a closed segment", func(t *testing.T) {
		dir, _ := closedLog(t)
		file := segmentFiles(t, dir)[1]
		pos := batchPositions(t, file)[2]
		h := headerAt(t, file, pos)
		flipByte(t, file, pos+BatchHeaderSize+3)

		l := openLog(t, dir, smallOptions()) // clean: closed segments are trusted
		_, err := l.Read(h.BaseOffset, 1, l.EndOffset())
		wantCorruption(t, "Read of the batch", err, file, pos, ErrCRC)
		// A read that reaches the batch from before it, here from the
		// previous segment, stops before it.
		positions := batchPositions(t, file)
		from := segmentBase(t, segmentFiles(t, dir)[0])
		data, err := l.Read(from, 1<<20, l.EndOffset())
		if err != nil {
			t.Fatalf("Read up to the corrupt batch: %v", err)
		}
		hs := splitBatches(t, data)
		if last := hs[len(hs)-1]; last.LastOffset()+1 != h.BaseOffset || positions[2] != pos {
			t.Fatalf("Read up to the corrupt batch ended at offset %d, want %d", last.LastOffset()+1, h.BaseOffset)
		}
		if data, err := l.Read(h.LastOffset()+1, 1, l.EndOffset()); err != nil || len(data) == 0 {
			t.Fatalf("Read after the corrupt batch: %v", err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}

		// With the recovery point after the segment it is not validated.
		makeUnclean(t, dir, l.ActiveSegmentBase())
		l = openLog(t, dir, smallOptions())
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		// With the recovery point before it, Open finds the damage.
		makeUnclean(t, dir, 0)
		_, err = Open(dir, smallOptions())
		wantCorruption(t, "Open", err, file, pos, ErrCRC)
	})

	activeCases := []struct {
		name   string
		damage func(t *testing.T, file string, pos int64)
		want   error
	}{
		{"byte flipped in the active segment before valid batches", func(t *testing.T, file string, pos int64) {
			flipByte(t, file, pos+BatchHeaderSize)
		}, ErrCRC},
		{"base offset out of sequence before valid batches", func(t *testing.T, file string, pos int64) {
			flipByte(t, file, pos+7)
		}, ErrOffsetSequence},
		{"magic changed before valid batches", func(t *testing.T, file string, pos int64) {
			flipByte(t, file, pos+magicPos)
		}, ErrMagic},
		{"garbage before valid batches", func(t *testing.T, file string, pos int64) {
			b, _ := os.ReadFile(file)
			copy(b[pos:], bytes.Repeat([]byte{0x5a}, BatchHeaderSize))
			binary.BigEndian.PutUint32(b[pos+batchLengthPos:], 20)
			os.WriteFile(file, b, 0o644)
		}, ErrMagic},
	}
	// A complete last batch that was written whole (no sector of zeros)
	// but is invalid is damage, not a torn write: it may have been
	// acknowledged, so recovery must not drop it.
	tailCases := []struct {
		name   string
		damage func(t *testing.T, file string, pos int64)
		want   error
	}{
		{"byte flipped in the last batch", func(t *testing.T, file string, pos int64) {
			flipByte(t, file, pos+BatchHeaderSize+3)
		}, ErrCRC},
		{"last batch's base offset out of sequence", func(t *testing.T, file string, pos int64) {
			flipByte(t, file, pos+7)
		}, ErrOffsetSequence},
		{"last batch's length damaged to run past the end", func(t *testing.T, file string, pos int64) {
			flipByte(t, file, pos+batchLengthPos+1) // its CRC still matches its bytes
		}, ErrBatchLength},
	}
	for _, tc := range tailCases {
		t.Run(tc.name, func(t *testing.T) {
			dir, _ := closedLog(t)
			files := segmentFiles(t, dir)
			file := files[len(files)-1]
			positions := batchPositions(t, file)
			last := positions[len(positions)-1]
			tc.damage(t, file, last)
			makeUnclean(t, dir, 0)
			_, err := Open(dir, smallOptions())
			wantCorruption(t, "Open", err, file, last, tc.want)
		})
	}
	for _, tc := range activeCases {
		t.Run(tc.name, func(t *testing.T) {
			dir, _ := closedLog(t)
			files := segmentFiles(t, dir)
			file := files[len(files)-1]
			positions := batchPositions(t, file)
			if len(positions) < 3 {
				t.Fatalf("active segment has %d batches, want at least 3", len(positions))
			}
			tc.damage(t, file, positions[1])
			makeUnclean(t, dir, 0)
			_, err := Open(dir, smallOptions())
			wantCorruption(t, "Open", err, file, positions[1], tc.want)
		})
	}

	for _, cut := range []struct {
		keep int64 // bytes of the last batch kept
		want error
	}{{10, ErrBatchTooShort}, {100, ErrBatchLength}} {
		t.Run(fmt.Sprintf("closed segment cut %d bytes into its last batch", cut.keep), func(t *testing.T) {
			dir, _ := closedLog(t)
			file := segmentFiles(t, dir)[1]
			positions := batchPositions(t, file)
			last := positions[len(positions)-1]
			if err := os.Truncate(file, last+cut.keep); err != nil {
				t.Fatal(err)
			}
			makeUnclean(t, dir, -1)
			_, err := Open(dir, smallOptions())
			wantCorruption(t, "Open", err, file, last, cut.want)
		})
	}

	t.Run("closed segment missing its last batch, read after a clean open", func(t *testing.T) {
		// Without offset index entries, Open's index check cannot
		// notice; Read does.
		dir := t.TempDir()
		opts := Options{SegmentBytes: 1024, IndexIntervalBytes: 1 << 20}
		l := openLog(t, dir, opts)
		appendBatches(t, l, 30, 1)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		file := segmentFiles(t, dir)[1]
		positions := batchPositions(t, file)
		last := positions[len(positions)-1]
		h := headerAt(t, file, last)
		if err := os.Truncate(file, last); err != nil {
			t.Fatal(err)
		}
		l = openLog(t, dir, opts)
		_, err := l.Read(h.BaseOffset, 1, l.EndOffset())
		var ce *CorruptionError
		if !errors.As(err, &ce) || ce.Segment != file || !errors.Is(err, ErrOffsetSequence) {
			t.Fatalf("Read of the missing batch: %v, want a *CorruptionError for %s", err, file)
		}
	})

	t.Run("segment missing between two others", func(t *testing.T) {
		dir, _ := closedLog(t)
		files := segmentFiles(t, dir)
		if err := os.Remove(files[2]); err != nil {
			t.Fatal(err)
		}
		makeUnclean(t, dir, -1)
		_, err := Open(dir, smallOptions())
		wantCorruption(t, "Open", err, files[3], 0, ErrOffsetSequence)
	})

	t.Run("log ends below the recovery point", func(t *testing.T) {
		dir, _ := closedLog(t)
		files := segmentFiles(t, dir)
		file := files[len(files)-1]
		positions := batchPositions(t, file)
		if err := os.Truncate(file, positions[len(positions)-1]); err != nil {
			t.Fatal(err)
		}
		os.Remove(filepath.Join(dir, cleanShutdownName)) // the recovery point stays at the old end
		_, err := Open(dir, smallOptions())
		wantCorruption(t, "Open", err, file, positions[len(positions)-1], ErrRecoveryPoint)
		if !strings.Contains(err.Error(), "remove "+filepath.Join(dir, recoveryPointName)) {
			t.Fatalf("error does not say how to accept the shorter log: %v", err)
		}
	})
}

func wantCorruption(t *testing.T, what string, err error, file string, pos int64, sentinel error) {
	t.Helper()
	var ce *CorruptionError
	if !errors.As(err, &ce) {
		t.Fatalf("%s: %v, want a *CorruptionError", what, err)
	}
	if ce.Segment != file || ce.Offset != pos || !errors.Is(err, sentinel) {
		t.Fatalf("%s: %v; want file %s, byte %d, %v", what, err, file, pos, sentinel)
	}
	if want := fmt.Sprintf("commitlog: corrupt segment %s at byte %d: ", file, pos); !strings.HasPrefix(ce.Error(), want) {
		t.Fatalf("%s: message %q does not start with %q", what, ce.Error(), want)
	}
}

// TestTornTail appends what an interrupted write can leave to the active
// segment of a crashed log and checks that Open truncates it and appends
// continue at the right offset.
func TestTornTail(t *testing.T) {
	next := makeBatch(3, 40, 5000)
	big := makeBatch(3, 600, 5000) // spans several 512-byte sectors
	// unwritten zeroes big's bytes from the first sector boundary after its
	// start, at file position size, for n bytes (to its end if n < 0).
	unwritten := func(end, size int64, n int) []byte {
		b := withBase(big, end)
		q := int((size/sectorSize+1)*sectorSize - size)
		stop := len(b)
		if n >= 0 {
			stop = min(q+n, len(b))
		}
		clear(b[q:stop])
		return b
	}
	tests := []struct {
		name string
		tail func(end, size int64) []byte
	}{
		{"fewer bytes than a header", func(int64, int64) []byte { return bytes.Repeat([]byte{0xab}, 30) }},
		{"partial batch", func(end, _ int64) []byte { return withBase(next, end)[:100] }},
		{"header only", func(end, _ int64) []byte { return withBase(next, end)[:BatchHeaderSize] }},
		{"zeros", func(int64, int64) []byte { return make([]byte, 4096) }},
		{"whole batch whose sectors after the first never arrived", func(end, size int64) []byte { return unwritten(end, size, -1) }},
		{"garbage whose length runs past the end", func(int64, int64) []byte {
			b := bytes.Repeat([]byte{0x77}, 200)
			binary.BigEndian.PutUint32(b[batchLengthPos:], 5000)
			return b
		}},
	}
	for _, tt := range tests {
		for _, emptyActive := range []bool{false, true} {
			name := tt.name
			if emptyActive {
				name += " in an empty active segment"
			}
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				l := openLog(t, dir, Options{SegmentBytes: 4096})
				stored := appendBatches(t, l, 30, 1)
				if emptyActive {
					if err := l.roll(); err != nil {
						t.Fatal(err)
					}
				}
				end := l.EndOffset()
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
				files := segmentFiles(t, dir)
				file := files[len(files)-1]
				size := fileSize(t, file)
				appendFile(t, file, tt.tail(end, size))
				makeUnclean(t, dir, end)

				var logs logBuffer
				l = openLog(t, dir, Options{SegmentBytes: 4096, Logger: logs.logger()})
				if !strings.Contains(logs.String(), "torn tail") {
					t.Fatalf("no warning about the torn tail:\n%s", logs.String())
				}
				if got := fileSize(t, file); got != size {
					t.Fatalf("%s is %d bytes after recovery, want %d", file, got, size)
				}
				if l.EndOffset() != end {
					t.Fatalf("EndOffset %d, want %d", l.EndOffset(), end)
				}
				base, err := l.Append(next)
				if err != nil || base != end {
					t.Fatalf("Append after recovery: %d, %v; want %d", base, err, end)
				}
				stored[base] = withBase(next, base)
				checkStored(t, l, stored)
			})
		}
	}
}

// TestIndexRepair damages index files and checks that Open rebuilds them
// from the log, identical to the originals, and that lookups stay right.
func TestIndexRepair(t *testing.T) {
	truncate := func(by int64) func(t *testing.T, name string) {
		return func(t *testing.T, name string) {
			if err := os.Truncate(name, fileSize(t, name)-by); err != nil {
				t.Fatal(err)
			}
		}
	}
	remove := func(t *testing.T, name string) {
		if err := os.Remove(name); err != nil {
			t.Fatal(err)
		}
	}
	empty := func(t *testing.T, name string) {
		if err := os.Truncate(name, 0); err != nil {
			t.Fatal(err)
		}
	}
	overwrite := func(at func(size int64) int64, v []byte) func(t *testing.T, name string) {
		return func(t *testing.T, name string) {
			b, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			copy(b[at(int64(len(b))):], v)
			if err := os.WriteFile(name, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	lastEntry := func(width int64) func(int64) int64 { return func(size int64) int64 { return size - width } }
	tests := []struct {
		name    string
		active  bool     // damage the active segment's files, else a closed one's
		suffix  []string // files to damage
		damage  func(t *testing.T, name string)
		message string // what the log says
	}{
		{"truncated .index of a closed segment", false, []string{indexSuffix}, truncate(3), "rebuilding"},
		{"truncated .timeindex of a closed segment", false, []string{timeIndexSuffix}, truncate(5), "rebuilding"},
		{"missing indexes of a closed segment", false, []string{indexSuffix, timeIndexSuffix}, remove, "rebuilding"},
		{"emptied .timeindex of a closed segment", false, []string{timeIndexSuffix}, empty, "rebuilding"},
		{"emptied .timeindex of the active segment", true, []string{timeIndexSuffix}, empty, "validating"},
		{"missing .timeindex of the active segment", true, []string{timeIndexSuffix}, remove, "validating"},
		{".index pointing past the log", false, []string{indexSuffix},
			overwrite(lastEntry(offsetEntrySize), []byte{0, 0, 0, 1, 0x7f, 0, 0, 0}), "rebuilding"},
		{".timeindex going backwards", false, []string{timeIndexSuffix},
			overwrite(lastEntry(timeEntrySize), make([]byte, timeEntrySize)), "rebuilding"},
		{"truncated .index of the active segment", true, []string{indexSuffix}, truncate(3), "validating"},
		{"missing indexes of the active segment", true, []string{indexSuffix, timeIndexSuffix}, remove, "validating"},
		{".index of the active segment out of order", true, []string{indexSuffix},
			overwrite(func(int64) int64 { return 0 }, []byte{0xff, 0, 0, 0, 0, 0, 0, 0}), "validating"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := smallOptions()
			l := openLog(t, dir, opts)
			stored := fillLog(t, l)
			times := offsetsForTimes(t, l)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			files := segmentFiles(t, dir)
			file := files[1]
			if tt.active {
				file = files[len(files)-1]
			}
			originals := map[string][]byte{}
			for _, suffix := range tt.suffix {
				name := strings.TrimSuffix(file, logSuffix) + suffix
				b, err := os.ReadFile(name)
				if err != nil || len(b) < 2*timeEntrySize {
					t.Fatalf("%s: %d bytes, %v; want a few entries", name, len(b), err)
				}
				originals[name] = b
				tt.damage(t, name)
			}

			var logs logBuffer
			opts.Logger = logs.logger()
			l = openLog(t, dir, opts)
			if !strings.Contains(logs.String(), tt.message) {
				t.Fatalf("log does not mention %q:\n%s", tt.message, logs.String())
			}
			checkStored(t, l, stored)
			for off := l.StartOffset(); off < l.EndOffset(); off++ {
				data, err := l.Read(off, 1, l.EndOffset())
				if err != nil {
					t.Fatalf("Read(%d): %v", off, err)
				}
				if h := splitBatches(t, data)[0]; h.BaseOffset > off || h.LastOffset() < off {
					t.Fatalf("Read(%d) returned batch %d..%d", off, h.BaseOffset, h.LastOffset())
				}
			}
			if got := offsetsForTimes(t, l); !equalInts(got, times) {
				t.Fatalf("OffsetForTime answers changed after the repair")
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			for name, want := range originals {
				if got, _ := os.ReadFile(name); !bytes.Equal(got, want) {
					t.Fatalf("%s rebuilt differently: %d bytes, want %d", name, len(got), len(want))
				}
			}
		})
	}
}

// offsetsForTimes returns OffsetForTime for a range of timestamps
// (appendBatches gives batch i timestamp 1000+i).
func offsetsForTimes(t *testing.T, l *Log) []int64 {
	t.Helper()
	var out []int64
	for ts := int64(990); ts < 1100; ts++ {
		off, ok, err := l.OffsetForTime(ts)
		if err != nil {
			t.Fatalf("OffsetForTime(%d): %v", ts, err)
		}
		if !ok {
			off = -1
		}
		out = append(out, off)
	}
	return out
}

// TestIndexEntryMismatch damages an index entry in the middle of a closed
// segment's index, which Open's first-and-last check does not read: lookups
// must notice, say so and still answer right.
func TestIndexEntryMismatch(t *testing.T) {
	dir, stored := closedLog(t)
	file := segmentFiles(t, dir)[1]
	name := strings.TrimSuffix(file, logSuffix) + indexSuffix
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	n := len(b) / offsetEntrySize
	if n < 3 {
		t.Fatalf("%s has %d entries, want at least 3", name, n)
	}
	// Point a middle entry at the first batch, keeping its offset.
	mid := (n / 2) * offsetEntrySize
	binary.BigEndian.PutUint32(b[mid+4:], 0)
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	opts := smallOptions()
	opts.Logger = logs.logger()
	l := openLog(t, dir, opts)
	for off := l.StartOffset(); off < l.EndOffset(); off++ {
		data, err := l.Read(off, 1, l.EndOffset())
		if err != nil {
			t.Fatalf("Read(%d): %v", off, err)
		}
		if h := splitBatches(t, data)[0]; h.BaseOffset > off || h.LastOffset() < off {
			t.Fatalf("Read(%d) returned batch %d..%d", off, h.BaseOffset, h.LastOffset())
		}
	}
	if !strings.Contains(logs.String(), "does not match") {
		t.Fatalf("the damaged entry was not reported:\n%s", logs.String())
	}
	checkStored(t, l, stored)
}

func TestLeftoverFilesRemoved(t *testing.T) {
	dir, stored := closedLog(t)
	leftovers := []string{segmentName(999999, indexSuffix), segmentName(999999, timeIndexSuffix), recoveryPointName + tmpSuffix}
	for _, name := range leftovers {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l := openLog(t, dir, smallOptions())
	for _, name := range leftovers {
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Fatalf("%s still exists after Open", name)
		}
	}
	checkStored(t, l, stored)
}

// TestIOFailure injects failures and checks that the log stops accepting
// writes, keeps what was made durable, and recovers on reopen.
func TestIOFailure(t *testing.T) {
	injected := errors.New("injected failure")
	tests := []struct {
		name string
		op   string // memFS operation to fail
		file string // suffix of the file to fail it on
	}{
		{"write", "write", logSuffix},
		{"fsync", "sync", logSuffix},
		{"roll", "open", logSuffix},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mfs := newMemFS()
			opts := smallOptions()
			opts.FS = mfs
			l, err := Open("/log", opts)
			if err != nil {
				t.Fatal(err)
			}
			durable := appendBatches(t, l, 10, 1)
			if err := l.Sync(l.EndOffset()); err != nil {
				t.Fatal(err)
			}
			synced := l.DurableOffset()
			mfs.setFail(func(op, name string) error {
				if op == tt.op && strings.HasSuffix(name, tt.file) {
					return injected
				}
				return nil
			})
			var failure error
			for i := 0; failure == nil && i < 100; i++ {
				var base int64
				base, failure = l.Append(makeBatch(2, 50, 1))
				if failure == nil {
					failure = l.Sync(base + 2)
				}
			}
			if !errors.Is(failure, ErrFailed) || !errors.Is(failure, injected) {
				t.Fatalf("failure %v, want ErrFailed wrapping the injected error", failure)
			}
			if _, err := l.Append(makeBatch(1, 1, 1)); !errors.Is(err, ErrFailed) {
				t.Fatalf("Append after the failure: %v, want ErrFailed", err)
			}
			if err := l.Sync(l.EndOffset() + 1); !errors.Is(err, ErrFailed) {
				t.Fatalf("Sync after the failure: %v, want ErrFailed", err)
			}
			if l.DurableOffset() < synced {
				t.Fatalf("DurableOffset went back to %d", l.DurableOffset())
			}
			if err := l.Close(); !errors.Is(err, ErrFailed) {
				t.Fatalf("Close of a failed log: %v, want ErrFailed", err)
			}
			if _, err := mfs.Stat("/log/" + cleanShutdownName); err == nil {
				t.Fatal("a failed log wrote the clean-shutdown marker")
			}

			mfs.setFail(nil)
			mfs.crash(nil)
			l = openLog(t, "/log", opts)
			if l.EndOffset() < synced {
				t.Fatalf("EndOffset %d after recovery, below the durable %d", l.EndOffset(), synced)
			}
			got := readAll(t, l, 1<<20)
			for base, b := range durable {
				if !bytes.Equal(got[base], b) {
					t.Fatalf("durable batch %d lost or changed", base)
				}
			}
			if _, err := l.Append(makeBatch(1, 1, 1)); err != nil {
				t.Fatalf("Append after recovery: %v", err)
			}
		})
	}
}

// TestZeroSectorInsideLastBatchIsCorruption: a complete last batch with a
// whole sector of zeros in its middle (its last bytes written) is not taken
// for a torn write: it may be a fsynced batch whose records hold zeros, then
// damaged. Open reports it; nothing is truncated.
func TestZeroSectorInsideLastBatchIsCorruption(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	appendBatches(t, l, 3, 1)
	if _, err := l.Append(makeBatch(3, 600, 50)); err != nil { // spans several sectors
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	file := segmentFiles(t, dir)[0]
	positions := batchPositions(t, file)
	pos := positions[len(positions)-1]
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	q := (pos/sectorSize + 1) * sectorSize
	if q+sectorSize >= int64(len(b)) {
		t.Fatalf("the last batch [%d, %d) holds no whole sector", pos, len(b))
	}
	clear(b[q : q+sectorSize])
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	makeUnclean(t, dir, 0)
	_, err = Open(dir, Options{})
	wantCorruption(t, "Open", err, file, pos, ErrCRC)
}
