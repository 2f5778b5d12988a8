package commitlog

import (
	"encoding/binary"
	"fmt"
	"sync"
)

// Sizes in bytes of the entries of the two index files.
const (
	offsetEntrySize = 8  // relative offset uint32, file position uint32
	timeEntrySize   = 12 // timestamp int64, relative offset uint32
)

// index is one of a segment's sparse index files (.index or .timeindex).
//
// While its segment is active, every entry is kept in memory and the file is
// brought up to date only when the segment is rolled or the log closed (after
// a crash, recovery rebuilds it from the log). A closed segment's index is
// binary-searched in the file with ReadAt, so memory does not grow with the
// retained log; the page cache keeps hot index files in memory.
type index struct {
	path  string
	width int  // entry size: offsetEntrySize or timeEntrySize
	f     File // the writer's (or recovery's) file; readers pass their own to search

	mu     sync.RWMutex // guards mem, n and inMem against concurrent searches
	mem    []byte       // every entry, while inMem
	n      int          // number of entries
	inMem  bool         // entries are searched in mem, not in f
	synced int          // bytes of mem already written to f; writer only
}

// add appends an entry to the in-memory index. Only the writer calls it.
func (x *index) add(e []byte) {
	x.mu.Lock()
	x.mem = append(x.mem, e...)
	x.n++
	x.mu.Unlock()
}

// entry copies entry i into buf, from memory or from f, the index file.
// The caller holds mu.
func (x *index) entry(f File, i int, buf []byte) error {
	if x.inMem {
		copy(buf, x.mem[i*x.width:])
		return nil
	}
	return readFull(f, buf, int64(i)*int64(x.width))
}

// search returns the last entry for which le reports true, where le is true
// for a prefix of the entries (entries are sorted); ok is false when it is
// true for none. f is the index file, open for the caller; it is read only
// when the entries are not in memory.
func (x *index) search(f File, le func(e []byte) bool) (e []byte, ok bool, err error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	buf := make([]byte, x.width)
	lo, hi := 0, x.n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if err := x.entry(f, m, buf); err != nil {
			return nil, false, fmt.Errorf("read %s: %w", x.path, err)
		}
		if le(buf) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 {
		return nil, false, nil
	}
	if err := x.entry(f, lo-1, buf); err != nil {
		return nil, false, fmt.Errorf("read %s: %w", x.path, err)
	}
	return buf, true, nil
}

// reset drops every entry and empties the file, before a rebuild.
func (x *index) reset() error {
	x.mu.Lock()
	x.mem, x.n, x.inMem = nil, 0, true
	x.mu.Unlock()
	x.synced = 0
	return x.f.Truncate(0)
}

// load reads the whole file into memory, for the active segment.
func (x *index) load() error {
	fi, err := x.f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	if size%int64(x.width) != 0 {
		return fmt.Errorf("%s is %d bytes, not a multiple of the %d-byte entry", x.path, size, x.width)
	}
	mem := make([]byte, size)
	if err := readFull(x.f, mem, 0); err != nil {
		return fmt.Errorf("read %s: %w", x.path, err)
	}
	x.mu.Lock()
	x.mem, x.n, x.inMem = mem, int(size)/x.width, true
	x.mu.Unlock()
	x.synced = len(mem)
	return nil
}

// open prepares searching the file, for a closed segment: it checks the
// file's size and returns its first and last entries (nil if it is empty).
func (x *index) open() (first, last []byte, err error) {
	fi, err := x.f.Stat()
	if err != nil {
		return nil, nil, err
	}
	size := fi.Size()
	if size%int64(x.width) != 0 {
		return nil, nil, fmt.Errorf("%s is %d bytes, not a multiple of the %d-byte entry", x.path, size, x.width)
	}
	x.mu.Lock()
	x.mem, x.n, x.inMem = nil, int(size)/x.width, false
	x.mu.Unlock()
	if x.n == 0 {
		return nil, nil, nil
	}
	first, last = make([]byte, x.width), make([]byte, x.width)
	if err := readFull(x.f, first, 0); err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", x.path, err)
	}
	if err := readFull(x.f, last, size-int64(x.width)); err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", x.path, err)
	}
	return first, last, nil
}

// flush writes the entries not yet in the file and fsyncs it.
func (x *index) flush() error {
	if x.synced < len(x.mem) {
		if _, err := x.f.Write(x.mem[x.synced:]); err != nil {
			return fmt.Errorf("write %s: %w", x.path, err)
		}
		x.synced = len(x.mem)
	}
	if err := x.f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", x.path, err)
	}
	return nil
}

// toFile switches searches to the file, which flush brought up to date, and
// frees the in-memory entries: the segment is closed.
func (x *index) toFile() {
	x.mu.Lock()
	x.mem, x.inMem = nil, false
	x.mu.Unlock()
	x.synced = 0
}

func offsetEntry(rel, pos uint32) [offsetEntrySize]byte {
	var e [offsetEntrySize]byte
	binary.BigEndian.PutUint32(e[:], rel)
	binary.BigEndian.PutUint32(e[4:], pos)
	return e
}

func decodeOffsetEntry(e []byte) (rel, pos uint32) {
	return binary.BigEndian.Uint32(e), binary.BigEndian.Uint32(e[4:])
}

func timeEntry(ts int64, rel uint32) [timeEntrySize]byte {
	var e [timeEntrySize]byte
	binary.BigEndian.PutUint64(e[:], uint64(ts))
	binary.BigEndian.PutUint32(e[8:], rel)
	return e
}

func decodeTimeEntry(e []byte) (ts int64, rel uint32) {
	return int64(binary.BigEndian.Uint64(e)), binary.BigEndian.Uint32(e[8:])
}

// checkOffsetEntries checks offset index entries (all of them, or the first
// and last): relative offsets and positions strictly increasing, each
// position leaving room for a batch header in a log of logSize bytes, and
// each relative offset below maxRel.
func checkOffsetEntries(path string, entries []byte, logSize, maxRel int64) error {
	prevRel, prevPos := int64(-1), int64(-1)
	for i := 0; i < len(entries); i += offsetEntrySize {
		r, p := decodeOffsetEntry(entries[i:])
		rel, pos := int64(r), int64(p)
		switch {
		case rel <= prevRel || pos <= prevPos:
			return fmt.Errorf("%s entry %d (offset +%d at byte %d) does not increase", path, i/offsetEntrySize, rel, pos)
		case pos+BatchHeaderSize > logSize:
			return fmt.Errorf("%s entry %d points to byte %d, past the %d-byte log", path, i/offsetEntrySize, pos, logSize)
		case rel >= maxRel:
			return fmt.Errorf("%s entry %d has offset +%d, past the segment's %d offsets", path, i/offsetEntrySize, rel, maxRel)
		}
		prevRel, prevPos = rel, pos
	}
	return nil
}

// checkTimeEntries checks time index entries (all of them, or the first and
// last): timestamps strictly increasing, relative offsets not decreasing and
// below maxRel.
func checkTimeEntries(path string, entries []byte, maxRel int64) error {
	prevTS, prevRel := int64(noTimestamp), int64(-1)
	for i := 0; i < len(entries); i += timeEntrySize {
		ts, r := decodeTimeEntry(entries[i:])
		rel := int64(r)
		switch {
		case ts <= prevTS || rel < prevRel:
			return fmt.Errorf("%s entry %d (timestamp %d at offset +%d) does not increase", path, i/timeEntrySize, ts, rel)
		case rel >= maxRel:
			return fmt.Errorf("%s entry %d has offset +%d, past the segment's %d offsets", path, i/timeEntrySize, rel, maxRel)
		}
		prevTS, prevRel = ts, rel
	}
	return nil
}
