package commitlog

import (
	"fmt"
	"io"
)

// Read-ahead of a scanner, in bytes: headers only, and whole batches.
const (
	headerReadahead = 4 << 10
	batchReadahead  = 64 << 10
)

// scanner walks the batches of a segment file in order. It reads through a
// buffer, so that small batches cost one read per buffer, not per batch.
type scanner struct {
	f         File
	path      string
	size      int64 // bytes of the file to scan
	pos       int64 // position of the next batch
	next      int64 // expected base offset of the next batch; -1 accepts any
	readahead int

	buf    []byte
	bufPos int64 // file position of buf[0]
}

// window returns the n bytes at pos, which the caller has checked are within
// size, reading them and up to readahead more if the buffer lacks them.
func (sc *scanner) window(pos int64, n int) ([]byte, error) {
	if pos >= sc.bufPos && pos+int64(n) <= sc.bufPos+int64(len(sc.buf)) {
		i := pos - sc.bufPos
		return sc.buf[i : i+int64(n)], nil
	}
	m := min(int64(max(n, sc.readahead)), sc.size-pos)
	if int64(cap(sc.buf)) < m {
		sc.buf = make([]byte, m)
	}
	sc.buf = sc.buf[:m]
	if err := readFull(sc.f, sc.buf, pos); err != nil {
		sc.buf = sc.buf[:0]
		return nil, fmt.Errorf("read %s at byte %d: %w", sc.path, pos, err)
	}
	sc.bufPos = pos
	return sc.buf[:n], nil
}

// header returns the header of the batch at sc.pos after checking its fields
// (parseHeader), that the batch fits in the file and that its base offset is
// the expected one. It returns io.EOF at the end of the file, a
// *CorruptionError for an invalid header, and other errors for failed reads.
func (sc *scanner) header() (BatchHeader, error) {
	left := sc.size - sc.pos
	if left <= 0 {
		return BatchHeader{}, io.EOF
	}
	if left < BatchHeaderSize {
		return BatchHeader{}, sc.corrupt(fmt.Errorf("%w: %d bytes left in the segment, a batch header needs %d", ErrBatchTooShort, left, BatchHeaderSize))
	}
	b, err := sc.window(sc.pos, BatchHeaderSize)
	if err != nil {
		return BatchHeader{}, err
	}
	h, err := parseHeader(b)
	if err != nil {
		return h, sc.corrupt(err)
	}
	if int64(h.Size()) > left {
		return h, sc.corrupt(fmt.Errorf("%w: batchLength %d runs past the end of the segment (%d bytes left)", ErrBatchLength, h.Length, left))
	}
	if sc.next >= 0 && h.BaseOffset != sc.next {
		return h, sc.corrupt(fmt.Errorf("%w: base offset %d, want %d", ErrOffsetSequence, h.BaseOffset, sc.next))
	}
	return h, nil
}

// advance moves past the batch whose header was just returned.
func (sc *scanner) advance(h BatchHeader) {
	sc.pos += int64(h.Size())
	sc.next = h.LastOffset() + 1
}

func (sc *scanner) corrupt(err error) error {
	return &CorruptionError{Segment: sc.path, Offset: sc.pos, Err: err}
}

// readFull reads len(b) bytes at off, failing with io.ErrUnexpectedEOF if the
// file is shorter.
func readFull(f File, b []byte, off int64) error {
	n, err := f.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}
