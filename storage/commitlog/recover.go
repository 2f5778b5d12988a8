package commitlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Names of the log directory's files besides the segments.
const (
	recoveryPointName = "recovery-point"
	cleanShutdownName = "clean-shutdown"
	tmpSuffix         = ".tmp"
	recoveryPointSize = 12 // offset int64, CRC32C of it uint32
)

// load opens the segments of l.dir and recovers them; see Open.
func (l *Log) load() error {
	if err := l.ensureDir(); err != nil {
		return err
	}
	entries, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return fmt.Errorf("open log %s: %w", l.dir, err)
	}
	names := make(map[string]bool, len(entries))
	var bases []int64
	for _, e := range entries {
		names[e.Name()] = true
		if base, ok := parseSegmentName(e.Name(), logSuffix); ok {
			bases = append(bases, base)
		}
	}
	if err := l.removeLeftovers(entries, names); err != nil {
		return err
	}
	slices.Sort(bases)
	clean := names[cleanShutdownName]
	var segs []*segment
	if len(bases) == 0 {
		s, err := createSegment(l.fs, l.dir, 0)
		if err != nil {
			return err
		}
		segs = []*segment{s}
	} else if segs, err = l.recoverSegments(bases, clean); err != nil {
		return err
	}
	last := segs[len(segs)-1]
	l.segs.Store(&segs)
	l.active = last
	l.files.activate(&last.h, last.writerFiles())
	l.end.Store(last.next)
	l.durable.Store(last.next)
	l.syncedPos = last.size.Load()
	if last.size.Load() > 0 {
		last.created = l.firstAppendTime(last)
	}
	if clean {
		if err := l.fs.Remove(filepath.Join(l.dir, cleanShutdownName)); err != nil {
			l.closeSegments()
			return fmt.Errorf("remove clean-shutdown marker: %w", err)
		}
	}
	// Make the marker's removal and any files created or removed above
	// durable before the first append.
	if err := l.fs.SyncDir(l.dir); err != nil {
		l.closeSegments()
		return fmt.Errorf("fsync directory %s: %w", l.dir, err)
	}
	l.logger.Debug("log opened", "dir", l.dir, "clean", clean, "segments", len(segs), "start_offset", segs[0].base, "end_offset", last.next)
	return nil
}

func (l *Log) closeSegments() {
	for _, s := range *l.segs.Load() {
		l.files.drop(&s.h)
	}
}

// ensureDir creates l.dir if it is missing and fsyncs its parent.
func (l *Log) ensureDir() error {
	_, err := l.fs.Stat(l.dir)
	if err == nil {
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("open log %s: %w", l.dir, err)
	}
	if err := l.fs.MkdirAll(l.dir, 0o755); err != nil {
		return fmt.Errorf("create log directory: %w", err)
	}
	return l.fs.SyncDir(filepath.Dir(l.dir))
}

// removeLeftovers removes the temporary recovery-point file of an
// interrupted write, and index files without a log, left by a crash while
// retention deleted their segment.
func (l *Log) removeLeftovers(entries []os.DirEntry, names map[string]bool) error {
	for _, e := range entries {
		name := e.Name()
		leftover := name == recoveryPointName+tmpSuffix
		for _, suffix := range []string{indexSuffix, timeIndexSuffix} {
			if base, ok := parseSegmentName(name, suffix); ok && !names[segmentName(base, logSuffix)] {
				leftover = true
			}
		}
		if !leftover {
			continue
		}
		l.logger.Info("removing leftover file", "file", filepath.Join(l.dir, name))
		if err := l.fs.Remove(filepath.Join(l.dir, name)); err != nil {
			return fmt.Errorf("remove leftover file: %w", err)
		}
	}
	return nil
}

// recoverSegments opens the segments with these base offsets (sorted) and
// recovers them. After a clean shutdown it trusts them, checking the index
// files and the active segment's batch chain (and validates the active
// segment if that check fails). After an unclean one it validates every
// batch from the segment containing the recovery point on, then fsyncs what
// it validated and records EndOffset as the new recovery point.
func (l *Log) recoverSegments(bases []int64, clean bool) (segs []*segment, err error) {
	defer func() {
		if err != nil {
			for _, s := range segs {
				s.close()
			}
		}
	}()
	for i, base := range bases {
		s := newSegment(l.dir, base)
		segs = append(segs, s)
		if i < len(bases)-1 {
			// A closed segment's files are opened only while it is
			// recovered (openClosedLog, checkClosedIndexes), so
			// that Open never holds every segment's files at once.
			fi, err := l.fs.Stat(s.logPath)
			if err != nil {
				return segs, fmt.Errorf("open segment: %w", err)
			}
			s.size.Store(fi.Size())
			continue
		}
		if s.log, err = l.fs.OpenFile(s.logPath, os.O_RDWR|os.O_APPEND, 0); err != nil {
			return segs, fmt.Errorf("open segment: %w", err)
		}
		fi, err := s.log.Stat()
		if err != nil {
			return segs, fmt.Errorf("stat %s: %w", s.logPath, err)
		}
		s.size.Store(fi.Size())
	}

	validateFrom := len(segs)
	rp, rpErr := readRecoveryPoint(l.fs, l.dir)
	if !clean {
		validateFrom = 0
		if rpErr == nil {
			validateFrom = max(segIndex(segs, rp), 0)
		} else {
			l.logger.Warn("recovery point unreadable; validating every segment", "dir", l.dir, "err", rpErr)
		}
		l.logger.Warn("log was not closed cleanly; validating segments", "dir", l.dir,
			"from_segment", segs[validateFrom].base, "segments", len(segs)-validateFrom)
	}

	for i, s := range segs {
		last := i == len(segs)-1
		if !last && i >= validateFrom {
			if err := l.openClosedLog(s); err != nil {
				return segs, err
			}
		}
		switch {
		case i >= validateFrom:
			if err := l.validate(s, last); err != nil {
				return segs, err
			}
			if i > validateFrom && segs[i-1].next != s.base {
				return segs, &CorruptionError{Segment: s.logPath, Offset: 0, Err: fmt.Errorf(
					"%w: the segment starts at offset %d, but the previous segment ends at offset %d", ErrOffsetSequence, s.base, segs[i-1].next)}
			}
		case last:
			problem, err := l.loadActive(s)
			if err != nil {
				return segs, err
			}
			if problem != nil {
				l.logger.Warn("active segment fails its check despite the clean-shutdown marker; validating it",
					"file", s.logPath, "problem", problem)
				if err := l.validate(s, true); err != nil {
					return segs, err
				}
			}
		default:
			if err := l.loadClosed(s, segs[i+1].base); err != nil {
				return segs, err
			}
		}
		if !last {
			// Reads open it again through the FileCache.
			if err := s.close(); err != nil {
				return segs, fmt.Errorf("close segment %d after recovery: %w", s.base, err)
			}
		}
	}

	if clean {
		return segs, nil
	}
	last := segs[len(segs)-1]
	if rpErr == nil && last.next < rp {
		return segs, &CorruptionError{Segment: last.logPath, Offset: last.size.Load(), Err: fmt.Errorf(
			"%w: the log ends at offset %d, below the recovery point %d, so data that was fsynced is missing; "+
				"to accept the shorter log, remove %s and open it again",
			ErrRecoveryPoint, last.next, rp, filepath.Join(l.dir, recoveryPointName))}
	}
	if err := writeRecoveryPoint(l.fs, l.dir, last.next); err != nil {
		return segs, err
	}
	return segs, nil
}

// validate checks every batch of s from its start: length, magic, CRC32C,
// counts, and offsets contiguous from the segment's base. It rebuilds the
// segment's writer state and indexes on the way; a closed segment is then
// sealed (its index files rewritten and fsynced), the active one fsynced. In
// the active (last) segment an invalid batch that is a torn tail is
// truncated; any other invalid batch is a *CorruptionError.
func (l *Log) validate(s *segment, last bool) error {
	return l.validateTorn(s, last, last)
}

// validateTorn is validate, with the truncation of a torn tail allowed only
// when truncateTorn is set (Heal validates what an fsync made durable: any
// invalid batch in it is corruption).
func (l *Log) validateTorn(s *segment, last, truncateTorn bool) error {
	if err := s.openIndexes(l.fs, os.O_RDWR|os.O_CREATE|os.O_APPEND); err != nil {
		return fmt.Errorf("open index: %w", err)
	}
	if err := s.resetState(); err != nil {
		return err
	}
	size := s.size.Load()
	sc := &scanner{f: s.log, path: s.logPath, size: size, next: s.base, readahead: batchReadahead}
	for sc.pos < size {
		h, bad, err := sc.verify()
		if err != nil {
			return err
		}
		if bad == nil {
			s.track(sc.pos, h, l.indexInterval)
			sc.advance(h)
			continue
		}
		torn := false
		if truncateTorn {
			if torn, err = bad.torn(sc); err != nil {
				return err
			}
		}
		if !torn {
			return sc.corrupt(bad.err)
		}
		l.logger.Warn("truncating the torn tail of the active segment", "file", s.logPath, "pos", sc.pos,
			"bytes", size-sc.pos, "reason", bad.err)
		if err := s.log.Truncate(sc.pos); err != nil {
			return fmt.Errorf("truncate %s: %w", s.logPath, err)
		}
		s.size.Store(sc.pos)
		break
	}
	if !last {
		return s.seal(s.syncLog)
	}
	return s.syncLog()
}

// invalidBatch describes the first invalid batch recovery finds.
type invalidBatch struct {
	err error // what is wrong
	end int64 // where the batch ends by its batchLength, or -1 if that is meaningless
}

// verify checks the whole batch at sc.pos. It returns its header, or what
// makes it invalid; err reports a failed read.
func (sc *scanner) verify() (BatchHeader, *invalidBatch, error) {
	left := sc.size - sc.pos
	if left < BatchHeaderSize {
		return BatchHeader{}, &invalidBatch{fmt.Errorf("%w: %d bytes left, a batch header needs %d", ErrBatchTooShort, left, BatchHeaderSize), -1}, nil
	}
	b, err := sc.window(sc.pos, BatchHeaderSize)
	if err != nil {
		return BatchHeader{}, nil, err
	}
	h := decodeHeader(b)
	end := int64(-1)
	if h.Size() >= BatchHeaderSize {
		end = sc.pos + int64(h.Size())
	}
	if end > sc.size {
		return h, &invalidBatch{fmt.Errorf("%w: batchLength %d runs past the end of the file (%d bytes left)", ErrBatchLength, h.Length, left), end}, nil
	}
	if err := h.checkFraming(); err != nil {
		return h, &invalidBatch{err, end}, nil
	}
	if b, err = sc.window(sc.pos, h.Size()); err != nil {
		return h, nil, err
	}
	if _, err := ParseBatch(b); err != nil {
		return h, &invalidBatch{err, end}, nil
	}
	if h.BaseOffset != sc.next {
		return h, &invalidBatch{fmt.Errorf("%w: base offset %d, want %d", ErrOffsetSequence, h.BaseOffset, sc.next), end}, nil
	}
	return h, nil, nil
}

// torn reports whether the invalid batch at sc.pos, in the active segment,
// is a torn tail, what an interrupted append leaves, rather than damage to a
// batch that was written whole (and may have been acknowledged):
//
//   - fewer bytes than a header remain, or
//   - its batchLength runs past the end of the file, unless the bytes up to
//     the end of the file match the batch's CRC (then the batch is whole and
//     only its length field is damaged), or
//   - every byte after it is zero (after its batchLength if that is usable,
//     else after its 61-byte header), and either its header is unusable (a
//     batchLength below a header's size, as a header that was never written
//     reads) or the batch's last bytes never reached the disk: zeros from a
//     sector boundary to the batch's end. File systems write appended data
//     in whole sectors and read what never reached the disk as zeros.
//
// Anything else is corruption: an invalid batch followed by more data, or a
// complete batch whose CRC (or another field) is wrong. A torn write this
// rule does not recognise (a sector lost in the middle of the last batch)
// takes the partition offline for repair, which loses nothing acknowledged;
// the opposite mistake could. One remains possible: a fsynced last batch
// that is later damaged and whose bytes after its last sector boundary
// happen to be all zeros (often a single byte: a record without headers
// ends in 0x00) is taken for a torn write and truncated. Telling them apart
// for sure needs to know how far the segment was fsynced, which is recorded
// only when it is rolled or closed.
func (b *invalidBatch) torn(sc *scanner) (bool, error) {
	left := sc.size - sc.pos
	if left < BatchHeaderSize {
		return true, nil
	}
	if b.end > sc.size {
		whole, err := sc.crcMatches(sc.pos, sc.size)
		return !whole, err
	}
	from := max(b.end, sc.pos+BatchHeaderSize)
	zeros, err := sc.allZero(from, sc.size)
	if err != nil || !zeros {
		return false, err
	}
	if b.end < sc.pos+BatchHeaderSize {
		return true, nil // the header itself is unusable
	}
	// The earliest boundary from which the batch is zero to its end.
	for q := (sc.pos/sectorSize + 1) * sectorSize; q < b.end; q += sectorSize {
		if zeros, err := sc.allZero(q, b.end); err != nil || zeros {
			return zeros, err
		}
	}
	return false, nil
}

// sectorSize is the unit in which a file system writes appended data, for
// telling a torn write from damage: 512 bytes, the smallest disk sector.
const sectorSize = 512

// crcMatches reports whether the bytes of the batch at pos up to end match
// the CRC in its header.
func (sc *scanner) crcMatches(pos, end int64) (bool, error) {
	if end-pos < BatchHeaderSize {
		return false, nil
	}
	head, err := sc.window(pos, BatchHeaderSize)
	if err != nil {
		return false, err
	}
	want := binary.BigEndian.Uint32(head[crcPos:])
	crc := uint32(0)
	for p := pos + attributesPos; p < end; {
		n := int(min(int64(batchReadahead), end-p))
		w, err := sc.window(p, n)
		if err != nil {
			return false, err
		}
		crc = crc32.Update(crc, castagnoli, w)
		p += int64(n)
	}
	return crc == want, nil
}

// allZero reports whether the bytes [from, to) are all zero.
func (sc *scanner) allZero(from, to int64) (bool, error) {
	for pos := from; pos < to; {
		n := int(min(int64(batchReadahead), to-pos))
		w, err := sc.window(pos, n)
		if err != nil {
			return false, err
		}
		for _, c := range w {
			if c != 0 {
				return false, nil
			}
		}
		pos += int64(n)
	}
	return true, nil
}

// loadActive prepares the active segment after a clean shutdown: it loads
// both indexes into memory and checks them, then walks the batch headers
// from the last offset index entry to the end of the file, which must end
// exactly at a batch boundary, restoring the writer state. problem says why
// the segment must be validated instead; err is a failure to read.
func (l *Log) loadActive(s *segment) (problem, err error) {
	if err := s.openIndexes(l.fs, os.O_RDWR|os.O_APPEND); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return err, nil
		}
		return nil, fmt.Errorf("open index: %w", err)
	}
	size := s.size.Load()
	if err := s.offIdx.load(); err != nil {
		return err, nil
	}
	if err := s.timeIdx.load(); err != nil {
		return err, nil
	}
	if len(s.timeIdx.mem) == 0 {
		if problem, err := l.checkNoTimestamps(s); problem != nil || err != nil {
			return problem, err
		}
	}
	// The segment's end is not known yet: relative offsets are checked
	// against it after the walk.
	const anyRel = math.MaxUint32 + 1
	if err := checkOffsetEntries(s.offIdx.path, s.offIdx.mem, size, anyRel); err != nil {
		return err, nil
	}
	if err := checkTimeEntries(s.timeIdx.path, s.timeIdx.mem, anyRel); err != nil {
		return err, nil
	}
	sc := &scanner{f: s.log, path: s.logPath, size: size, next: s.base, readahead: headerReadahead}
	wantLast := int64(-1)
	if n := len(s.offIdx.mem); n > 0 {
		rel, pos := decodeOffsetEntry(s.offIdx.mem[n-offsetEntrySize:])
		sc.pos, sc.next, wantLast = int64(pos), -1, s.base+int64(rel)
	}
	lastTimeOffset := int64(-1)
	if n := len(s.timeIdx.mem); n > 0 {
		ts, rel := decodeTimeEntry(s.timeIdx.mem[n-timeEntrySize:])
		s.maxTS.Store(ts)
		s.offsetOfMaxTS, s.lastTimeEntryTS = s.base+int64(rel), ts
		lastTimeOffset = s.offsetOfMaxTS
	}
	for {
		h, err := sc.header()
		if err == io.EOF {
			break
		}
		var ce *CorruptionError
		if errors.As(err, &ce) {
			return err, nil
		}
		if err != nil {
			return nil, err
		}
		if wantLast >= 0 && h.LastOffset() != wantLast {
			return fmt.Errorf("%s: last entry names offset %d, the batch at its position ends at %d", s.offIdx.path, wantLast, h.LastOffset()), nil
		}
		wantLast = -1
		s.track(sc.pos, h, l.indexInterval)
		sc.advance(h)
	}
	if lastTimeOffset >= s.next {
		return fmt.Errorf("%s: last entry names offset %d, past the segment's end %d", s.timeIdx.path, lastTimeOffset, s.next), nil
	}
	return nil, nil
}

// loadClosed prepares a closed segment that is trusted (before the recovery
// point, or after a clean shutdown): its index files must exist, have a size
// that is a multiple of their entry size, and first and last entries that
// are in order and within the segment. Otherwise both are rebuilt from the
// batch headers.
func (l *Log) loadClosed(s *segment, nextBase int64) error {
	s.next = nextBase
	problem, err := l.checkClosedIndexes(s, nextBase)
	if err != nil {
		return err
	}
	if problem == nil {
		return nil
	}
	l.logger.Info("rebuilding segment indexes", "file", s.logPath, "reason", problem)
	if err := l.openClosedLog(s); err != nil {
		return err
	}
	// Open owns the segment: no reader can hold the index files yet.
	for _, x := range []*index{&s.offIdx, &s.timeIdx} {
		if x.f != nil {
			x.f.Close()
			x.f = nil
		}
	}
	if err := s.openIndexes(l.fs, os.O_RDWR|os.O_CREATE|os.O_APPEND); err != nil {
		return fmt.Errorf("open index: %w", err)
	}
	if err := s.resetState(); err != nil {
		return err
	}
	sc := &scanner{f: s.log, path: s.logPath, size: s.size.Load(), next: s.base, readahead: headerReadahead}
	for {
		h, err := sc.header()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		s.track(sc.pos, h, l.indexInterval)
		sc.advance(h)
	}
	if s.next != nextBase {
		return sc.corrupt(fmt.Errorf("%w: the segment ends at offset %d, but the next segment starts at %d", ErrOffsetSequence, s.next, nextBase))
	}
	return s.seal(s.syncLog)
}

// checkClosedIndexes opens the index files of a closed segment and returns
// what is wrong with them, if anything; err is a failure other than a
// missing file.
func (l *Log) checkClosedIndexes(s *segment, nextBase int64) (problem, err error) {
	if err := s.openIndexes(l.fs, os.O_RDONLY); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return err, nil
		}
		return nil, fmt.Errorf("open index: %w", err)
	}
	size, maxRel := s.size.Load(), nextBase-s.base
	first, last, err := s.offIdx.open()
	if err != nil {
		return err, nil
	}
	if err := checkOffsetEntries(s.offIdx.path, firstAndLast(first, last), size, maxRel); err != nil {
		return err, nil
	}
	if first, last, err = s.timeIdx.open(); err != nil {
		return err, nil
	}
	if err := checkTimeEntries(s.timeIdx.path, firstAndLast(first, last), maxRel); err != nil {
		return err, nil
	}
	if last == nil {
		if err := l.openClosedLog(s); err != nil {
			return nil, err
		}
		return l.checkNoTimestamps(s)
	}
	ts, rel := decodeTimeEntry(last)
	s.maxTS.Store(ts)
	s.offsetOfMaxTS, s.lastTimeEntryTS = s.base+int64(rel), ts
	return nil, nil
}

// openClosedLog opens the log file of closed segment s, read-only, for
// recovery, unless it is open. recoverSegments closes it after recovering s.
func (l *Log) openClosedLog(s *segment) error {
	if s.log != nil {
		return nil
	}
	f, err := l.fs.OpenFile(s.logPath, os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("open segment: %w", err)
	}
	s.log = f
	return nil
}

// checkNoTimestamps checks a segment whose time index is empty, which is
// right only if no batch has a timestamp: it looks at the first batch.
func (l *Log) checkNoTimestamps(s *segment) (problem, err error) {
	if s.size.Load() < BatchHeaderSize {
		return nil, nil
	}
	var b [BatchHeaderSize]byte
	if err := readFull(s.log, b[:], 0); err != nil {
		return nil, fmt.Errorf("read %s: %w", s.logPath, err)
	}
	if ts := decodeHeader(b[:]).MaxTimestamp; ts >= 0 {
		return fmt.Errorf("%s is empty, but the first batch has timestamp %d", s.timeIdx.path, ts), nil
	}
	return nil, nil
}

// firstAndLast returns the entries to check of an index: none, the only one,
// or the first and the last.
func firstAndLast(first, last []byte) []byte {
	switch {
	case first == nil:
		return nil
	case string(first) == string(last):
		return first
	}
	return append(slices.Clip(first), last...)
}

// firstAppendTime estimates when the first batch of a reopened active
// segment was appended, for Options.SegmentAge: the first batch's
// MaxTimestamp (not later than now), or the file's modification time if the
// batch has no timestamp.
func (l *Log) firstAppendTime(s *segment) time.Time {
	now := l.now()
	var b [BatchHeaderSize]byte
	if err := readFull(s.log, b[:], 0); err == nil {
		if ts := decodeHeader(b[:]).MaxTimestamp; ts >= 0 {
			if t := time.UnixMilli(ts); t.Before(now) {
				return t
			}
			return now
		}
	}
	if t, err := s.newestTime(l.fs); err == nil && t.Before(now) {
		return t
	}
	return now
}

// writeRecoveryPoint records off as the recovery point, atomically: a
// temporary file is written and fsynced, renamed over the old one, and the
// directory fsynced.
func writeRecoveryPoint(fsys FS, dir string, off int64) error {
	var b [recoveryPointSize]byte
	binary.BigEndian.PutUint64(b[:], uint64(off))
	binary.BigEndian.PutUint32(b[8:], crc32.Checksum(b[:8], castagnoli))
	name := filepath.Join(dir, recoveryPointName)
	if err := writeSynced(fsys, name+tmpSuffix, b[:]); err != nil {
		return fmt.Errorf("write recovery point: %w", err)
	}
	if err := fsys.Rename(name+tmpSuffix, name); err != nil {
		return fmt.Errorf("write recovery point: %w", err)
	}
	if err := fsys.SyncDir(dir); err != nil {
		return fmt.Errorf("write recovery point: fsync directory %s: %w", dir, err)
	}
	return nil
}

// readRecoveryPoint returns the recorded recovery point.
func readRecoveryPoint(fsys FS, dir string) (int64, error) {
	name := filepath.Join(dir, recoveryPointName)
	f, err := fsys.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var b [recoveryPointSize + 1]byte
	n, err := f.ReadAt(b[:], 0)
	if err != nil && err != io.EOF {
		return 0, fmt.Errorf("read %s: %w", name, err)
	}
	if n != recoveryPointSize || crc32.Checksum(b[:8], castagnoli) != binary.BigEndian.Uint32(b[8:]) {
		return 0, fmt.Errorf("%s: not a %d-byte offset and CRC32C", name, recoveryPointSize)
	}
	return int64(binary.BigEndian.Uint64(b[:])), nil
}

// writeCleanMarker creates the empty clean-shutdown file and makes it
// durable.
func writeCleanMarker(fsys FS, dir string) error {
	if err := writeSynced(fsys, filepath.Join(dir, cleanShutdownName), nil); err != nil {
		return fmt.Errorf("write clean-shutdown marker: %w", err)
	}
	if err := fsys.SyncDir(dir); err != nil {
		return fmt.Errorf("write clean-shutdown marker: fsync directory %s: %w", dir, err)
	}
	return nil
}

// writeSynced writes a file with content b and fsyncs it.
func writeSynced(fsys FS, name string, b []byte) error {
	f, err := fsys.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
