package commitlog

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// File name suffixes of a segment's three files.
const (
	logSuffix       = ".log"
	indexSuffix     = ".index"
	timeIndexSuffix = ".timeindex"
)

// noTimestamp is Kafka's "no timestamp" value (RecordBatch.NO_TIMESTAMP): a
// segment's max timestamp until a batch has a larger one.
const noTimestamp = -1

// segmentName returns the file name of the segment with this base offset:
// the offset in 20 decimal digits, then suffix.
func segmentName(base int64, suffix string) string {
	return fmt.Sprintf("%020d%s", base, suffix)
}

// parseSegmentName returns the base offset of a file named by segmentName
// with this suffix.
func parseSegmentName(name, suffix string) (int64, bool) {
	digits, ok := strings.CutSuffix(name, suffix)
	if !ok || len(digits) != 20 || strings.Trim(digits, "0123456789") != "" {
		return 0, false
	}
	base, err := strconv.ParseInt(digits, 10, 64)
	return base, err == nil
}

// segment is one .log file with its .index and .timeindex. The active (last)
// segment takes appends; the others are closed and never change.
//
// log and the index files' f are the files the writer uses: open for the
// active segment, and for a closed segment only while Open recovers it.
// Readers never use them: they hold the segment's files through h, the
// segment's place in the log's FileCache, which for the active segment
// holds the writer's files.
type segment struct {
	base    int64
	logPath string
	log     File
	offIdx  index
	timeIdx index
	h       handle // guarded by the FileCache's mutex

	size    atomic.Int64 // bytes of log holding whole batches, visible to readers
	maxTS   atomic.Int64 // largest batch MaxTimestamp, or noTimestamp if none is larger
	deleted atomic.Bool  // set by Retain before it closes the files

	// Writer state: owned by Open, then by the Log's writer (Log.mu).
	next            int64     // offset after the last batch
	offsetOfMaxTS   int64     // last offset of the first batch that reached maxTS
	lastTimeEntryTS int64     // timestamp of the last time index entry, or noTimestamp
	bytesSinceIndex int       // log bytes since the last offset index entry
	created         time.Time // time of the first append, for Options.SegmentAge
}

func newSegment(dir string, base int64) *segment {
	s := &segment{
		base:            base,
		logPath:         filepath.Join(dir, segmentName(base, logSuffix)),
		offIdx:          index{path: filepath.Join(dir, segmentName(base, indexSuffix)), width: offsetEntrySize},
		timeIdx:         index{path: filepath.Join(dir, segmentName(base, timeIndexSuffix)), width: timeEntrySize},
		next:            base,
		offsetOfMaxTS:   base,
		lastTimeEntryTS: noTimestamp,
	}
	s.maxTS.Store(noTimestamp)
	return s
}

// createSegment creates the three files of a new, empty active segment. The
// caller fsyncs the directory before appending to it.
func createSegment(fsys FS, dir string, base int64) (*segment, error) {
	s := newSegment(dir, base)
	var err error
	if s.log, err = fsys.OpenFile(s.logPath, os.O_RDWR|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o644); err != nil {
		return nil, fmt.Errorf("create segment %d: %w", base, err)
	}
	if err := s.openIndexes(fsys, os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND); err != nil {
		s.close()
		return nil, fmt.Errorf("create segment %d: %w", base, err)
	}
	s.offIdx.inMem, s.timeIdx.inMem = true, true
	return s, nil
}

// openIndexes opens both index files with flag, unless they are open.
func (s *segment) openIndexes(fsys FS, flag int) error {
	for _, x := range []*index{&s.offIdx, &s.timeIdx} {
		if x.f != nil {
			continue
		}
		f, err := fsys.OpenFile(x.path, flag, 0o644)
		if err != nil {
			return err
		}
		x.f = f
	}
	return nil
}

// close closes the files the writer or recovery opened and forgets them. It
// is for a segment no reader can hold (not yet published, or being
// recovered); a published segment's files are closed through the FileCache
// (drop).
func (s *segment) close() error {
	err := s.writerFiles().close()
	s.log, s.offIdx.f, s.timeIdx.f = nil, nil, nil
	return err
}

// writerFiles returns the files the writer or recovery opened.
func (s *segment) writerFiles() *segFiles {
	return &segFiles{log: s.log, off: s.offIdx.f, time: s.timeIdx.f}
}

// remove deletes the segment's files, the log first so that a crash
// part-way leaves index files without a log, which Open removes.
func (s *segment) remove(fsys FS) error {
	var err error
	for _, name := range []string{s.logPath, s.offIdx.path, s.timeIdx.path} {
		if rerr := fsys.Remove(name); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
	}
	return err
}

// rel returns offset relative to the segment's base, as the index files
// store it. Rolling keeps every offset of a segment within uint32 of its base.
func (s *segment) rel(offset int64) uint32 { return uint32(offset - s.base) }

// track records a batch written at byte pos: it updates the writer state and
// adds index entries as Kafka does. An offset index entry (the batch's last
// offset and its position) is added when at least interval bytes were
// written since the previous one; at the same time a time index entry (the
// max timestamp so far and the last offset of the first batch that reached
// it) is added if the max timestamp grew since the previous time entry.
// Appending and recovery both call track, so rebuilt indexes equal the
// originals.
func (s *segment) track(pos int64, h BatchHeader, interval int) {
	if h.MaxTimestamp > s.maxTS.Load() {
		s.maxTS.Store(h.MaxTimestamp)
		s.offsetOfMaxTS = h.LastOffset()
	}
	if s.bytesSinceIndex >= interval {
		e := offsetEntry(s.rel(h.LastOffset()), uint32(pos))
		s.offIdx.add(e[:])
		s.maybeAddTimeEntry()
		s.bytesSinceIndex = 0
	}
	s.bytesSinceIndex += h.Size()
	s.next = h.LastOffset() + 1
}

// maybeAddTimeEntry adds a time index entry for the max timestamp so far if
// it is larger than the last entry's.
func (s *segment) maybeAddTimeEntry() {
	if ts := s.maxTS.Load(); ts > s.lastTimeEntryTS {
		e := timeEntry(ts, s.rel(s.offsetOfMaxTS))
		s.timeIdx.add(e[:])
		s.lastTimeEntryTS = ts
	}
}

// resetState forgets the writer state and the index entries, before the
// segment is scanned again from its start.
func (s *segment) resetState() error {
	s.next, s.offsetOfMaxTS, s.lastTimeEntryTS, s.bytesSinceIndex = s.base, s.base, noTimestamp, 0
	s.maxTS.Store(noTimestamp)
	if err := s.offIdx.reset(); err != nil {
		return fmt.Errorf("truncate %s: %w", s.offIdx.path, err)
	}
	if err := s.timeIdx.reset(); err != nil {
		return fmt.Errorf("truncate %s: %w", s.timeIdx.path, err)
	}
	return nil
}

// flush adds the final time index entry (so that the last time entry of a
// closed or cleanly closed segment holds its max timestamp, as in Kafka),
// brings both index files up to date and fsyncs them and the log, the log
// with syncLog (Log.syncActive for the active segment, whose fsyncs must be
// serialised with Sync's).
func (s *segment) flush(syncLog func() error) error {
	s.maybeAddTimeEntry()
	if err := s.offIdx.flush(); err != nil {
		return err
	}
	if err := s.timeIdx.flush(); err != nil {
		return err
	}
	return syncLog()
}

// syncLog fsyncs the segment's log file, for a segment no other fsync can
// run on (recovery).
func (s *segment) syncLog() error {
	if err := s.log.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", s.logPath, err)
	}
	return nil
}

// seal flushes the segment and switches its index searches to the files: the
// segment becomes closed. Rolling seals the active segment before it creates
// the next one, so only the active segment ever needs an fsync from Sync.
func (s *segment) seal(syncLog func() error) error {
	if err := s.flush(syncLog); err != nil {
		return err
	}
	s.offIdx.toFile()
	s.timeIdx.toFile()
	return nil
}

// newestTime is the time retention ages the segment by: its max timestamp,
// or the log file's modification time when no batch has a timestamp (as
// Kafka does). It stats the file by name: a closed segment's files may be
// closed.
func (s *segment) newestTime(fsys FS) (time.Time, error) {
	if ts := s.maxTS.Load(); ts >= 0 {
		return time.UnixMilli(ts), nil
	}
	fi, err := fsys.Stat(s.logPath)
	if err != nil {
		return time.Time{}, fmt.Errorf("stat %s: %w", s.logPath, err)
	}
	return fi.ModTime(), nil
}
