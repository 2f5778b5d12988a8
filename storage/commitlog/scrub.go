package commitlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
)

// DefaultScrubBufferBytes is the read window of Scrub and Repair when
// ScrubOptions.BufferBytes or RepairOptions.BufferBytes is zero: the most
// memory they use for the file's bytes, whatever the size of a batch.
const DefaultScrubBufferBytes = 1 << 20

// minScrubBufferBytes is the smallest read window: room for a header and
// some records.
const minScrubBufferBytes = 4 << 10

// ScrubOptions configures Scrub. The zero value is ready to use.
type ScrubOptions struct {
	// FS is the file system. Default OSFS.
	FS FS
	// BufferBytes bounds the memory Scrub reads the files through, in
	// bytes: batches larger than it are checked in pieces. At least 4096.
	// Default DefaultScrubBufferBytes (1 MiB).
	BufferBytes int
}

// ScrubReport is what Scrub found in a log directory.
type ScrubReport struct {
	Dir      string
	Segments []SegmentScrub // oldest first
	Batches  int64          // valid batches checked, in every segment
	Bytes    int64          // bytes checked: valid batches and damaged ranges
}

// OK reports whether no segment holds a damaged range.
func (r *ScrubReport) OK() bool { return len(r.Damaged()) == 0 }

// Damaged returns every damaged range, in log order.
func (r *ScrubReport) Damaged() []DamagedRange {
	var ds []DamagedRange
	for _, s := range r.Segments {
		ds = append(ds, s.Damaged...)
	}
	return ds
}

// SegmentScrub is what Scrub found in one segment file.
type SegmentScrub struct {
	Path    string // the .log file
	Base    int64  // its base offset, from its name
	Active  bool   // the last segment when Scrub listed the directory
	Size    int64  // the file's size when Scrub opened it
	Batches int64  // valid batches
	Bytes   int64  // bytes checked: valid batches and damaged ranges
	// End is the offset after the segment's last valid batch, or after
	// the offsets of a damaged range that ends the segment.
	End int64
	// Tail is the number of bytes after the last whole batch of the
	// active segment that Scrub leaves unchecked and does not count as
	// damage: a batch still being appended (fewer bytes than a header, or
	// a batchLength running past the end of the file) or a tail of zeros,
	// which is what a crash during an append leaves and what Open
	// truncates.
	Tail int64
	// Skipped, if not nil, says why the segment was not checked: it was
	// deleted (by retention) after Scrub listed the directory.
	Skipped error
	Damaged []DamagedRange
}

// DamagedRange is a run of invalid bytes in a segment file: from an invalid
// batch to the next valid batch, or to the end of the file if none
// follows. The next valid batch is the first position after the invalid
// one where a RecordBatch v2 header parses, its batchLength fits in the
// file, its CRC32C verifies, its base offset is at least the offset after
// the last valid batch, and its offsets end before the next segment's base
// offset and within 2^32-1 of the segment's own.
type DamagedRange struct {
	Segment string // path of the .log file
	Start   int64  // byte position of the first invalid byte
	End     int64  // byte position after the range: the next valid batch or the end of the file
	// FirstOffset and LastOffset are the offsets the range held, lost:
	// from the offset after the last valid batch before the range to the
	// offset before the next valid batch (or the next segment's base).
	// LastOffset is FirstOffset-1 when the range held no offset (bytes
	// between two batches whose offsets are contiguous).
	FirstOffset int64
	LastOffset  int64
	// AtEnd says that nothing valid follows the range in the last
	// segment: the log ends with it, and the offsets it held are not
	// known. LastOffset is then the last offset the readable headers in
	// the range claim, or FirstOffset-1 if none is readable.
	AtEnd bool
	// ClaimedRecords is the sum of the recordsCount fields of the
	// batch headers that are still readable in the range (a header that
	// parses and whose batchLength stays in the range, walked from the
	// range's start), -1 if the first one is not readable: when only a
	// batch's body or CRC is damaged, the number of records lost.
	ClaimedRecords int64
	// Err is the first invalid batch's error: file, byte position and
	// what is wrong (it wraps a sentinel such as ErrCRC).
	Err *CorruptionError

	// What the placeholder batch that Repair puts in the range's place
	// copies from the last valid batch before it, in log order:
	// maxTimestamp and partitionLeaderEpoch (-1 without one).
	prevTimestamp int64
	prevEpoch     int32
}

// Offsets returns the number of offsets the range held, as far as known
// (for an AtEnd range, as far as its readable headers claim).
func (d DamagedRange) Offsets() int64 { return max(d.LastOffset-d.FirstOffset+1, 0) }

// Scrub verifies, without changing anything, every batch of every segment
// of the log in dir: length, magic, CRC32C, counts, offsets contiguous
// within each segment and from each segment to the next, and each
// segment's first batch at the offset its file is named by. It checks the
// active (last) segment up to its last whole batch. An invalid batch does
// not stop it: it reports the damaged range (see DamagedRange) and goes on
// from the next valid batch, so the report names every damaged range.
//
// Scrub is safe to run while a Log has the directory open, in this process
// or another: it never writes, takes no lock, reads the files through its
// own read-only handles in windows of ScrubOptions.BufferBytes, tolerates
// an active segment that grows or is rolled during the scrub, and skips a
// segment deleted by retention after it listed the directory. It does not
// check the index files, which Open rebuilds when they do not match.
//
// The error is for a directory that cannot be listed, a file that cannot
// be read, or ctx ending; corruption is in the report, not an error.
func Scrub(ctx context.Context, dir string, opts ScrubOptions) (*ScrubReport, error) {
	if opts.FS == nil {
		opts.FS = OSFS
	}
	c := newChecker(ctx, opts.FS, opts.BufferBytes)
	bases, err := listSegments(opts.FS, dir)
	if err != nil {
		return nil, err
	}
	r := &ScrubReport{Dir: dir}
	for i, base := range bases {
		limit := int64(-1)
		if i < len(bases)-1 {
			limit = bases[i+1]
		}
		s, err := c.segment(dir, base, limit, i == len(bases)-1)
		if err != nil {
			return nil, err
		}
		r.Segments = append(r.Segments, s)
		r.Batches += s.Batches
		r.Bytes += s.Bytes
	}
	return r, nil
}

// listSegments returns the base offsets of the segment files in dir,
// sorted.
func listSegments(fsys FS, dir string) ([]int64, error) {
	entries, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list log %s: %w", dir, err)
	}
	var bases []int64
	for _, e := range entries {
		if base, ok := parseSegmentName(e.Name(), logSuffix); ok {
			bases = append(bases, base)
		}
	}
	slices.Sort(bases)
	return bases, nil
}

// checker verifies segment files through a bounded read window. It keeps
// across segments what a placeholder batch copies from the last valid
// batch.
type checker struct {
	ctx     context.Context
	fs      FS
	bufSize int

	// Per segment file.
	f      File
	path   string
	base   int64 // the segment's base offset
	size   int64
	buf    []byte
	bufPos int64

	prevTimestamp int64
	prevEpoch     int32
}

func newChecker(ctx context.Context, fsys FS, bufSize int) *checker {
	if bufSize == 0 {
		bufSize = DefaultScrubBufferBytes
	}
	return &checker{ctx: ctx, fs: fsys, bufSize: max(bufSize, minScrubBufferBytes), prevTimestamp: noTimestamp, prevEpoch: -1}
}

// segment checks the segment with this base offset. limit is the next
// segment's base offset, or -1 for the last segment, which is active.
func (c *checker) segment(dir string, base, limit int64, active bool) (SegmentScrub, error) {
	path := filepath.Join(dir, segmentName(base, logSuffix))
	s := SegmentScrub{Path: path, Base: base, Active: active, End: base}
	f, err := c.fs.OpenFile(path, os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		s.Skipped = fmt.Errorf("%s was deleted after the directory was listed", path)
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("open segment: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return s, fmt.Errorf("stat %s: %w", path, err)
	}
	c.f, c.path, c.base, c.size, c.buf, c.bufPos = f, path, base, fi.Size(), c.buf[:0], 0
	s.Size = c.size

	pos, next := int64(0), base
	for pos < c.size {
		h, problem, err := c.verify(pos, next, limit)
		if err != nil {
			return s, err
		}
		if problem == nil {
			s.Batches++
			s.Bytes += int64(h.Size())
			c.prevTimestamp, c.prevEpoch = max(c.prevTimestamp, h.MaxTimestamp), h.PartitionLeaderEpoch
			pos += int64(h.Size())
			next = h.LastOffset() + 1
			continue
		}
		q, qh, found, err := c.resync(pos+1, next, limit)
		if err != nil {
			return s, err
		}
		if !found && active {
			tail, err := c.isTail(pos, h)
			if err != nil {
				return s, err
			}
			if tail {
				s.Tail = c.size - pos
				break
			}
		}
		d := DamagedRange{
			Segment: path, Start: pos, End: c.size, FirstOffset: next,
			Err:           &CorruptionError{Segment: path, Offset: pos, Err: problem},
			prevTimestamp: c.prevTimestamp, prevEpoch: c.prevEpoch,
		}
		if found {
			d.End = q
		}
		claimedLast, err := c.claims(&d)
		if err != nil {
			return s, err
		}
		switch {
		case found:
			d.LastOffset = qh.BaseOffset - 1
		case limit >= 0:
			d.LastOffset = limit - 1
		default:
			d.AtEnd = true
			d.LastOffset = max(claimedLast, next-1)
		}
		s.Damaged = append(s.Damaged, d)
		s.Bytes += d.End - d.Start
		pos, next = d.End, d.LastOffset+1
		if d.AtEnd {
			break
		}
	}
	if limit >= 0 && next < limit {
		// The segment ends before the next one starts: the offsets
		// between are in no file.
		s.Damaged = append(s.Damaged, DamagedRange{
			Segment: path, Start: c.size, End: c.size, FirstOffset: next, LastOffset: limit - 1, ClaimedRecords: -1,
			Err: &CorruptionError{Segment: path, Offset: c.size, Err: fmt.Errorf(
				"%w: the segment ends at offset %d, but the next segment starts at offset %d", ErrOffsetSequence, next, limit)},
			prevTimestamp: c.prevTimestamp, prevEpoch: c.prevEpoch,
		})
		next = limit
	}
	s.End = next
	return s, nil
}

// peek returns the bytes of the file from pos: at least atLeast of them
// (pos+atLeast must be within the file, and atLeast at most the window), at
// most atMost, as many as the window holds. It reads a new window at pos
// when the current one holds fewer than atLeast.
func (c *checker) peek(pos int64, atLeast, atMost int) ([]byte, error) {
	if pos < c.bufPos || pos+int64(atLeast) > c.bufPos+int64(len(c.buf)) {
		if err := c.ctx.Err(); err != nil {
			return nil, err
		}
		n := int(min(int64(c.bufSize), c.size-pos))
		if cap(c.buf) < n {
			c.buf = make([]byte, c.bufSize)
		}
		c.buf = c.buf[:n]
		if err := readFull(c.f, c.buf, pos); err != nil {
			c.buf = c.buf[:0]
			return nil, fmt.Errorf("read %s at byte %d: %w", c.path, pos, err)
		}
		c.bufPos = pos
	}
	b := c.buf[pos-c.bufPos:]
	if len(b) > atMost {
		b = b[:atMost]
	}
	return b, nil
}

// verify checks the batch at pos as recovery does: framing, a batchLength
// within the file, the CRC32C, the counts, a base offset equal to next and,
// when limit >= 0, a last offset below limit (the next segment's base).
// problem says what is wrong; err is a failed read.
func (c *checker) verify(pos, next, limit int64) (h BatchHeader, problem, err error) {
	left := c.size - pos
	if left < BatchHeaderSize {
		return h, fmt.Errorf("%w: %d bytes left in the segment, a batch header needs %d", ErrBatchTooShort, left, BatchHeaderSize), nil
	}
	b, err := c.peek(pos, BatchHeaderSize, BatchHeaderSize)
	if err != nil {
		return h, nil, err
	}
	h = decodeHeader(b)
	if err := h.checkFraming(); err != nil {
		return h, err, nil
	}
	if int64(h.Size()) > left {
		return h, fmt.Errorf("%w: batchLength %d runs past the end of the segment (%d bytes left)", ErrBatchLength, h.Length, left), nil
	}
	crc, err := c.crc(pos, h)
	if err != nil {
		return h, nil, err
	}
	if crc != h.CRC {
		return h, fmt.Errorf("%w: crc field 0x%08x, computed 0x%08x", ErrCRC, h.CRC, crc), nil
	}
	if err := h.checkCounts(); err != nil {
		return h, err, nil
	}
	if h.BaseOffset != next {
		return h, fmt.Errorf("%w: base offset %d, want %d", ErrOffsetSequence, h.BaseOffset, next), nil
	}
	if limit >= 0 && h.LastOffset() >= limit {
		return h, fmt.Errorf("%w: the batch ends at offset %d, but the next segment starts at offset %d", ErrOffsetSequence, h.LastOffset(), limit), nil
	}
	return h, nil, nil
}

// crc computes the CRC32C of the batch at pos, whose header is h and which
// lies within the file, reading it window by window.
func (c *checker) crc(pos int64, h BatchHeader) (uint32, error) {
	var crc uint32
	end := pos + int64(h.Size())
	for p := pos + attributesPos; p < end; {
		b, err := c.peek(p, 1, int(min(end-p, int64(c.bufSize))))
		if err != nil {
			return 0, err
		}
		crc = crc32.Update(crc, castagnoli, b)
		p += int64(len(b))
	}
	return crc, nil
}

// resync finds the first valid batch at or after from: a header that
// parses, fits in the file, verifies its CRC32C, and has a base offset of at
// least next and (when limit >= 0) a last offset below limit. found is false
// when none follows.
func (c *checker) resync(from, next, limit int64) (pos int64, h BatchHeader, found bool, err error) {
	for p := from; p+BatchHeaderSize <= c.size; {
		// A candidate at q has the magic byte at q+16, and q is at
		// most size-61.
		w, err := c.peek(p+magicPos, 1, int(c.size-BatchHeaderSize-p+1))
		if err != nil {
			return 0, h, false, err
		}
		i := bytes.IndexByte(w, batchMagic)
		if i < 0 {
			p += int64(len(w))
			continue
		}
		q := p + int64(i)
		h, ok, err := c.candidate(q, next, limit)
		if err != nil {
			return 0, h, false, err
		}
		if ok {
			return q, h, true, nil
		}
		p = q + 1
	}
	return 0, BatchHeader{}, false, nil
}

// candidate reports whether a valid batch with a base offset of at least
// next (and offsets below limit, if limit >= 0, and within 2^32-1 of the
// segment's base) starts at pos.
func (c *checker) candidate(pos, next, limit int64) (BatchHeader, bool, error) {
	b, err := c.peek(pos, BatchHeaderSize, BatchHeaderSize)
	if err != nil {
		return BatchHeader{}, false, err
	}
	h := decodeHeader(b)
	if h.checkFraming() != nil || h.checkCounts() != nil || pos+int64(h.Size()) > c.size ||
		h.BaseOffset < next || (limit >= 0 && h.LastOffset() >= limit) || h.LastOffset()-c.base > math.MaxUint32 ||
		h.LastOffset() < h.BaseOffset {
		return h, false, nil
	}
	crc, err := c.crc(pos, h)
	if err != nil {
		return h, false, err
	}
	return h, crc == h.CRC, nil
}

// isTail reports whether the invalid batch at pos, in the active segment
// with no valid batch after it, is an append in progress or a torn tail
// rather than damage: fewer bytes than a header are left, or its
// batchLength runs past the end of the file, or every byte from pos on is
// zero.
func (c *checker) isTail(pos int64, h BatchHeader) (bool, error) {
	left := c.size - pos
	if left < BatchHeaderSize || (h.Magic == batchMagic && h.Size() >= BatchHeaderSize && int64(h.Size()) > left) {
		return true, nil
	}
	for p := pos; p < c.size; {
		b, err := c.peek(p, 1, int(c.size-p))
		if err != nil {
			return false, err
		}
		for _, x := range b {
			if x != 0 {
				return false, nil
			}
		}
		p += int64(len(b))
	}
	return true, nil
}

// claims walks the batch headers that are still readable from the start
// of d, setting d.ClaimedRecords, and returns the last offset of those
// whose offsets follow on from d.FirstOffset (-1 if none).
func (c *checker) claims(d *DamagedRange) (lastOffset int64, err error) {
	d.ClaimedRecords, lastOffset = -1, -1
	chained := true
	for p := d.Start; p+BatchHeaderSize <= d.End; {
		b, err := c.peek(p, BatchHeaderSize, BatchHeaderSize)
		if err != nil {
			return -1, err
		}
		h := decodeHeader(b)
		if h.checkFraming() != nil || h.checkCounts() != nil || p+int64(h.Size()) > d.End {
			break
		}
		d.ClaimedRecords = max(d.ClaimedRecords, 0) + int64(h.NumRecords)
		if chained = chained && h.BaseOffset == max(lastOffset+1, d.FirstOffset); chained {
			lastOffset = h.LastOffset()
		}
		p += int64(h.Size())
	}
	return lastOffset, nil
}
