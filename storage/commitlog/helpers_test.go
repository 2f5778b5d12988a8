package commitlog

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// makeBatch encodes a valid RecordBatch v2 with base offset 0 and n records
// (n >= 1) of valueSize value bytes each, all with timestamp ts (so the
// batch's MaxTimestamp is ts). Records are minimal Kafka records: varint
// length, attributes, timestamp and offset deltas, null key, value, no
// headers.
func makeBatch(n, valueSize int, ts int64) []byte {
	var recs []byte
	for i := range n {
		r := []byte{0}                       // attributes
		r = binary.AppendVarint(r, 0)        // timestampDelta
		r = binary.AppendVarint(r, int64(i)) // offsetDelta
		r = binary.AppendVarint(r, -1)       // key: null
		r = binary.AppendVarint(r, int64(valueSize))
		r = append(r, bytes.Repeat([]byte{byte('a' + i%26)}, valueSize)...)
		r = binary.AppendVarint(r, 0) // headers
		recs = binary.AppendVarint(recs, int64(len(r)))
		recs = append(recs, r...)
	}
	b := make([]byte, BatchHeaderSize, BatchHeaderSize+len(recs))
	be := binary.BigEndian
	be.PutUint32(b[batchLengthPos:], uint32(BatchHeaderSize-batchLengthOverhead+len(recs)))
	be.PutUint32(b[leaderEpochPos:], 0)
	b[magicPos] = batchMagic
	be.PutUint32(b[lastOffsetDeltaPos:], uint32(n-1))
	be.PutUint64(b[baseTimestampPos:], uint64(ts))
	be.PutUint64(b[maxTimestampPos:], uint64(ts))
	be.PutUint64(b[producerIDPos:], ^uint64(0)) // -1
	be.PutUint16(b[producerEpochPos:], ^uint16(0))
	be.PutUint32(b[baseSequencePos:], ^uint32(0))
	be.PutUint32(b[recordsCountPos:], uint32(n))
	b = append(b, recs...)
	reseal(b)
	return b
}

// reseal recomputes the CRC of batch b after a test edited it.
func reseal(b []byte) {
	binary.BigEndian.PutUint32(b[crcPos:], crc32.Checksum(b[attributesPos:], castagnoli))
}

// withBase returns a copy of batch b with its base offset set, as the log
// stores it.
func withBase(b []byte, base int64) []byte {
	c := bytes.Clone(b)
	binary.BigEndian.PutUint64(c, uint64(base))
	return c
}

// fakeClock is a settable clock for Options.Now.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time          { return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.t = c.t.Add(d) }

// smallOptions returns options that make a handful of batches roll several
// segments and write several index entries per segment.
func smallOptions() Options {
	return Options{SegmentBytes: 1024, IndexIntervalBytes: 100}
}

// openLog opens a log and closes it when the test ends.
func openLog(t testing.TB, dir string, opts Options) *Log {
	t.Helper()
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// appendBatches appends count batches of 1 to 5 records with increasing
// timestamps starting at ts0 and returns what the log stores for each one,
// keyed by base offset.
func appendBatches(t testing.TB, l *Log, count int, ts0 int64) map[int64][]byte {
	t.Helper()
	stored := map[int64][]byte{}
	for i := range count {
		b := makeBatch(1+i%5, 10+i%30, ts0+int64(i))
		base, err := l.Append(b)
		if err != nil {
			t.Fatalf("Append #%d: %v", i, err)
		}
		stored[base] = withBase(b, base)
	}
	return stored
}

// splitBatches splits data returned by Read into batches, failing the test
// if any does not parse.
func splitBatches(t testing.TB, data []byte) []BatchHeader {
	t.Helper()
	var hs []BatchHeader
	for len(data) > 0 {
		if len(data) < BatchHeaderSize {
			t.Fatalf("%d trailing bytes after %d batches", len(data), len(hs))
		}
		size := int(binary.BigEndian.Uint32(data[batchLengthPos:])) + batchLengthOverhead
		if size > len(data) {
			t.Fatalf("batch %d declares %d bytes, %d left", len(hs), size, len(data))
		}
		h, err := ParseBatch(data[:size])
		if err != nil {
			t.Fatalf("batch %d: %v", len(hs), err)
		}
		hs = append(hs, h)
		data = data[size:]
	}
	return hs
}

// readAll reads the whole log from StartOffset in reads of maxBytes and
// checks that offsets are contiguous; it returns each batch by base offset.
func readAll(t testing.TB, l *Log, maxBytes int) map[int64][]byte {
	t.Helper()
	got := map[int64][]byte{}
	for off, end := l.StartOffset(), l.EndOffset(); off < end; {
		data, err := l.Read(off, maxBytes, end)
		if err != nil {
			t.Fatalf("Read(%d): %v", off, err)
		}
		if len(data) == 0 {
			t.Fatalf("Read(%d) returned nothing below EndOffset %d", off, end)
		}
		for _, h := range splitBatches(t, data) {
			if h.BaseOffset != off {
				t.Fatalf("batch at offset %d, want %d", h.BaseOffset, off)
			}
			got[off] = data[:h.Size()]
			data = data[h.Size():]
			off = h.LastOffset() + 1
		}
	}
	return got
}

// checkStored fails the test unless the log holds exactly want (by base
// offset), read back in reads of several sizes.
func checkStored(t testing.TB, l *Log, want map[int64][]byte) {
	t.Helper()
	for _, maxBytes := range []int{1, 700, 1 << 20} {
		got := readAll(t, l, maxBytes)
		if len(got) != len(want) {
			t.Fatalf("maxBytes %d: log holds %d batches, want %d", maxBytes, len(got), len(want))
		}
		for base, b := range want {
			if !bytes.Equal(got[base], b) {
				t.Fatalf("maxBytes %d: batch at %d differs from what was appended", maxBytes, base)
			}
		}
	}
}

// segmentFiles lists the log files of a log directory, oldest first.
func segmentFiles(t testing.TB, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*"+logSuffix))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// flipByte inverts one byte of a file.
func flipByte(t testing.TB, name string, pos int64) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	b[pos] ^= 0xff
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// crashLog abandons l as a process crash would: the files are closed
// without the final fsync, recovery point or clean-shutdown marker.
func crashLog(l *Log) {
	l.closeOnce.Do(func() { l.closeErr = l.shutdown(false) })
}
