package commitlog

import (
	"errors"
	"testing"
)

// FuzzScan writes the fuzz input as the only segment of a log directory
// without a clean-shutdown marker and opens it, so recovery validates it.
// Open must not panic, and either fails with a *CorruptionError or succeeds
// with a log whose every batch reads back valid, contiguous from offset 0,
// and that takes appends at EndOffset.
func FuzzScan(f *testing.F) {
	var segment []byte
	for i := range 4 {
		segment = append(segment, withBase(makeBatch(1+i, 10*i, int64(i)), int64(i*(i+1)/2))...)
	}
	f.Add(segment)                                                           // valid
	f.Add(segment[:len(segment)-5])                                          // torn last batch
	f.Add(segment[:BatchHeaderSize+20])                                      // torn first batch
	f.Add(segment[:30])                                                      // less than a header
	f.Add(append(segment[:len(segment):len(segment)], make([]byte, 100)...)) // zero tail
	for _, pos := range []int{3, 8, 16, 21, 30, 70, 200} {
		flipped := append([]byte(nil), segment...)
		flipped[pos] ^= 0x20 // base offset, length, magic, crc-covered fields, records
		f.Add(flipped)
	}
	f.Add(withBase(makeBatch(2, 5, 1), 9)) // first batch not at the segment's base
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		mfs := newMemFS()
		mfs.writeFile(t, "/log/"+segmentName(0, logSuffix), data)
		l, err := Open("/log", Options{FS: mfs, IndexIntervalBytes: 64})
		if err != nil {
			var ce *CorruptionError
			if !errors.As(err, &ce) {
				t.Fatalf("Open failed without a *CorruptionError: %v", err)
			}
			return
		}
		defer l.Close()
		if l.StartOffset() != 0 || l.Size() > int64(len(data)) {
			t.Fatalf("StartOffset %d, Size %d from a %d-byte segment", l.StartOffset(), l.Size(), len(data))
		}
		got := readAll(t, l, 100) // checks every batch and their contiguity
		var n int64
		for _, b := range got {
			n += int64(len(b))
		}
		if n != l.Size() {
			t.Fatalf("batches total %d bytes, the log is %d", n, l.Size())
		}
		end := l.EndOffset()
		if base, err := l.Append(makeBatch(1, 1, 1)); err != nil || base != end {
			t.Fatalf("Append after recovery: %d, %v; want %d", base, err, end)
		}
	})
}
