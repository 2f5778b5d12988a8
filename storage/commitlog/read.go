package commitlog

import (
	"errors"
	"fmt"
	"io"
	"sort"
)

// Read returns whole batches, concatenated as stored, starting with the batch
// that contains offset. It stops before the first later batch that has an
// offset at or above limit (an exclusive bound such as the high watermark;
// values above EndOffset mean EndOffset) and before the total would exceed
// maxBytes, but returns at least the first batch when offset is below limit.
// It continues into the next segments while both bounds allow. Read returns
// (nil, nil) when offset >= limit, and ErrOffsetOutOfRange when offset is
// below StartOffset or above EndOffset, or when retention deletes the segment
// during the read. A closed segment's files are opened through the log's
// FileCache; if that fails (the process is out of file handles), the read
// fails, or ends with the batches of the segments before, and the next read
// tries again.
//
// Every returned batch's CRC is verified. A mismatch, or a header that does
// not parse, ends the read before that batch; if it is the first batch, Read
// returns a *CorruptionError naming the segment file and byte position, so a
// consumer gets every valid batch and then the error, never skipped data.
// The returned slice is the caller's. Read never blocks appends and is safe
// to call concurrently with every other method.
func (l *Log) Read(offset int64, maxBytes int, limit int64) ([]byte, error) {
	end := l.end.Load() // before the segment list: see Append's publication order
	segs := *l.segs.Load()
	if l.closed.Load() {
		return nil, ErrClosed
	}
	if start := segs[0].base; offset < start || offset > end {
		return nil, fmt.Errorf("%w: offset %d, the log holds [%d, %d)", ErrOffsetOutOfRange, offset, start, end)
	}
	limit = min(limit, end)
	if offset >= limit {
		return nil, nil
	}
	var out []byte
	first := segIndex(segs, offset)
	for i := first; i < len(segs) && segs[i].base < limit; i++ {
		s := segs[i]
		data, more, err := l.readSegment(s, offset, maxBytes-len(out), limit, i == first)
		if out == nil {
			out = data
		} else {
			out = append(out, data...)
		}
		if err != nil && len(out) > 0 {
			// Serve the valid batches before the corrupt one, or
			// before a segment that could not be read; a Read that
			// starts there reports the error.
			return out, nil
		}
		if err != nil {
			return nil, l.readError(s, err)
		}
		if !more {
			break
		}
	}
	return out, nil
}

// readSegment reads from segment s the batches Read wants, starting with the
// one containing offset if first, or else at the segment's start. more
// reports that it reached the end of the segment with budget left and no
// batch at or above limit, so Read may go on with the next segment. With a
// *CorruptionError it returns the valid batches before the corrupt one.
func (l *Log) readSegment(s *segment, offset int64, budget int, limit int64, first bool) (data []byte, more bool, err error) {
	f, err := l.acquire(s)
	if err != nil {
		return nil, false, err
	}
	defer l.release(s)
	size := s.size.Load()
	pos, next := int64(0), s.base
	n := min(int64(max(budget, 0)), size)
	if first {
		p, h, err := l.locate(s, f, offset, size)
		if err != nil {
			return nil, false, err
		}
		pos, next = p, h.BaseOffset
		n = max(min(int64(max(budget, 0)), size-pos), int64(h.Size()))
	}
	if n < BatchHeaderSize {
		return nil, false, nil
	}
	buf := make([]byte, n)
	if err := readFull(f.log, buf, pos); err != nil {
		return nil, false, fmt.Errorf("read %s at byte %d: %w", s.logPath, pos, err)
	}
	corrupt := func(p int, err error) ([]byte, bool, error) {
		return buf[:p], false, &CorruptionError{Segment: s.logPath, Offset: pos + int64(p), Err: err}
	}
	p := 0
	for p < len(buf) {
		if len(buf)-p < BatchHeaderSize {
			if pos+n == size {
				return corrupt(p, fmt.Errorf("%w: %d bytes left in the segment, a batch header needs %d", ErrBatchTooShort, len(buf)-p, BatchHeaderSize))
			}
			return buf[:p], false, nil // the budget ends here
		}
		h, err := parseHeader(buf[p:])
		if err != nil {
			return corrupt(p, err)
		}
		if h.BaseOffset != next {
			return corrupt(p, fmt.Errorf("%w: base offset %d, want %d", ErrOffsetSequence, h.BaseOffset, next))
		}
		if p > 0 || !first {
			if h.LastOffset() >= limit {
				return buf[:p], false, nil
			}
		}
		if p+h.Size() > len(buf) {
			if pos+int64(p+h.Size()) > size {
				return corrupt(p, fmt.Errorf("%w: batchLength %d runs past the end of the segment", ErrBatchLength, h.Length))
			}
			return buf[:p], false, nil // the budget ends here
		}
		if _, err := ParseBatch(buf[p : p+h.Size()]); err != nil {
			return corrupt(p, err)
		}
		p += h.Size()
		next = h.LastOffset() + 1
	}
	return buf, pos+n == size, nil
}

// locate returns the position and header of the batch of s that contains
// offset, which must be below the EndOffset seen by the caller before it
// loaded size; f are the segment's files, held by the caller. It looks the
// offset up in the sparse index and scans headers from there. An index entry that does not match the log (a damaged index
// file: Open checks only the first and last entries of a closed segment's
// index) is logged and ignored, and the scan starts at the segment's start.
func (l *Log) locate(s *segment, f *segFiles, offset, size int64) (int64, BatchHeader, error) {
	rel := offset - s.base
	e, ok, err := s.offIdx.search(f.off, func(e []byte) bool {
		r, p := decodeOffsetEntry(e)
		return int64(r) <= rel && int64(p) < size
	})
	if err != nil {
		return 0, BatchHeader{}, err
	}
	sc := &scanner{f: f.log, path: s.logPath, size: size, next: s.base, readahead: headerReadahead}
	if ok {
		r, p := decodeOffsetEntry(e)
		sc.pos, sc.next = int64(p), -1
		h, err := sc.header()
		if err == nil && h.LastOffset() == s.base+int64(r) {
			return l.scanTo(sc, h, offset)
		}
		l.logger.Warn("offset index entry does not match the log; scanning the segment from its start",
			"index", s.offIdx.path, "offset", s.base+int64(r), "pos", p, "err", err)
		sc.pos, sc.next = 0, s.base
	}
	h, err := sc.header()
	if err != nil {
		return 0, BatchHeader{}, l.notFound(sc, offset, err)
	}
	return l.scanTo(sc, h, offset)
}

// scanTo walks from the batch h at sc.pos to the batch containing offset.
func (l *Log) scanTo(sc *scanner, h BatchHeader, offset int64) (int64, BatchHeader, error) {
	for h.LastOffset() < offset {
		sc.advance(h)
		var err error
		if h, err = sc.header(); err != nil {
			return 0, BatchHeader{}, l.notFound(sc, offset, err)
		}
	}
	return sc.pos, h, nil
}

// notFound turns the end of a segment into the corruption it is when the
// segment should have held offset.
func (l *Log) notFound(sc *scanner, offset int64, err error) error {
	if err == io.EOF {
		return sc.corrupt(fmt.Errorf("%w: offset %d not found: the segment ends at offset %d", ErrOffsetSequence, offset, sc.next))
	}
	return err
}

// readError explains an error met while reading segment s: the segment was
// deleted by retention, or the log closed, under the reader.
func (l *Log) readError(s *segment, err error) error {
	var ce *CorruptionError
	switch {
	case errors.As(err, &ce):
		return err
	case s.deleted.Load():
		return fmt.Errorf("%w: segment %d was deleted by retention during the read", ErrOffsetOutOfRange, s.base)
	case l.closed.Load():
		return ErrClosed
	}
	return err
}

// segIndex returns the index of the segment containing offset, which is at
// least the first segment's base.
func segIndex(segs []*segment, offset int64) int {
	return sort.Search(len(segs), func(i int) bool { return segs[i].base > offset }) - 1
}

// OffsetForTime returns the base offset of the first batch whose MaxTimestamp
// is at least ts (a batch-granular answer, as Kafka's ListOffsets by
// timestamp gives), or ok false when no batch below EndOffset has one. It
// skips segments by their max timestamp, then looks ts up in the segment's
// time index and scans headers from there. Safe for concurrent use.
func (l *Log) OffsetForTime(ts int64) (offset int64, ok bool, err error) {
	end := l.end.Load()
	segs := *l.segs.Load()
	if l.closed.Load() {
		return 0, false, ErrClosed
	}
	for _, s := range segs {
		if s.maxTS.Load() < ts {
			continue
		}
		offset, ok, err := l.offsetForTimeIn(s, ts, end)
		if err != nil {
			return 0, false, l.readError(s, err)
		}
		if ok {
			return offset, true, nil
		}
	}
	return 0, false, nil
}

// offsetForTimeIn answers OffsetForTime within one segment. A time index
// entry (T, o) says that the batch containing o is the first to reach max
// timestamp T in the segment, so when T <= ts no batch before it can answer
// and the scan starts there.
func (l *Log) offsetForTimeIn(s *segment, ts, end int64) (int64, bool, error) {
	f, err := l.acquire(s)
	if err != nil {
		return 0, false, err
	}
	defer l.release(s)
	size := s.size.Load()
	e, ok, err := s.timeIdx.search(f.time, func(e []byte) bool {
		t, r := decodeTimeEntry(e)
		return t <= ts && s.base+int64(r) < end
	})
	if err != nil {
		return 0, false, err
	}
	sc := &scanner{f: f.log, path: s.logPath, size: size, next: s.base, readahead: headerReadahead}
	if ok {
		_, r := decodeTimeEntry(e)
		pos, h, err := l.locate(s, f, s.base+int64(r), size)
		if err != nil {
			return 0, false, err
		}
		sc.pos, sc.next = pos, h.BaseOffset
	}
	for {
		h, err := sc.header()
		if err == io.EOF {
			return 0, false, nil
		}
		if err != nil {
			return 0, false, err
		}
		if h.BaseOffset >= end {
			return 0, false, nil
		}
		if h.MaxTimestamp >= ts {
			return h.BaseOffset, true, nil
		}
		sc.advance(h)
	}
}

// Batches calls fn, in offset order, with the header of every batch whose
// last offset is at least from (from below StartOffset means StartOffset)
// and whose base offset is below the EndOffset seen when Batches starts. It
// reads headers only, not batch bodies, so CRCs are not verified; it is meant
// for rebuilding state such as producer sequences. fn runs without any lock
// held. An error from fn stops the walk and is returned as is; a header that
// does not parse is a *CorruptionError.
func (l *Log) Batches(from int64, fn func(BatchHeader) error) error {
	end := l.end.Load()
	segs := *l.segs.Load()
	if l.closed.Load() {
		return ErrClosed
	}
	from = max(from, segs[0].base)
	if from >= end {
		return nil
	}
	first := segIndex(segs, from)
	for i := first; i < len(segs); i++ {
		s := segs[i]
		done, err := l.segmentBatches(s, from, i == first, end, fn)
		if err != nil || done {
			return err
		}
	}
	return nil
}

// segmentBatches is Batches within segment s, from its start or, if first,
// from the batch holding from; done reports that it reached end.
func (l *Log) segmentBatches(s *segment, from int64, first bool, end int64, fn func(BatchHeader) error) (done bool, err error) {
	f, err := l.acquire(s)
	if err != nil {
		return false, l.readError(s, err)
	}
	defer l.release(s)
	size := s.size.Load()
	sc := &scanner{f: f.log, path: s.logPath, size: size, next: s.base, readahead: headerReadahead}
	if first {
		pos, h, err := l.locate(s, f, from, size)
		if err != nil {
			return false, l.readError(s, err)
		}
		sc.pos, sc.next = pos, h.BaseOffset
	}
	for {
		h, err := sc.header()
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, l.readError(s, err)
		}
		if h.BaseOffset >= end {
			return true, nil
		}
		if err := fn(h); err != nil {
			return true, err
		}
		sc.advance(h)
	}
}
