package commitlog

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Names of the files Repair creates in a log directory (see doc.go).
const (
	// quarantineInfix joins a segment file's name and the byte position
	// of a damaged range moved out of it:
	// 00000000000000004711.log.quarantine-8192.
	quarantineInfix = ".quarantine-"
	// repairTmpSuffix marks a file Repair is writing: a segment's new
	// content or a quarantine file, renamed into place once fsynced. A
	// leftover one (a crash during a repair) is removed by the next
	// Repair; Open ignores it.
	repairTmpSuffix = ".repair-tmp"
	// maxQuarantineNames bounds the numbered names tried for a quarantine
	// file whose first name is taken by other bytes.
	maxQuarantineNames = 100
)

// RepairOptions configures Repair. The zero value is ready to use.
type RepairOptions struct {
	// Log is the options the repaired log is opened with at the end, to
	// verify it and rebuild its indexes: IndexIntervalBytes should be the
	// one its owner uses (the broker's is the default). Its FS and
	// Logger serve the whole repair; the logger gets one line per step.
	Log Options
	// DryRun makes Repair report what it would do without changing
	// anything.
	DryRun bool
	// BufferBytes bounds the memory files are read and copied through,
	// as ScrubOptions.BufferBytes. Default DefaultScrubBufferBytes.
	BufferBytes int
}

// RepairReport is what Repair found and did.
type RepairReport struct {
	Dir string
	// Scrub is what the scrub before the repair found.
	Scrub *ScrubReport
	// Ranges are the damaged ranges and what was done with each, in log
	// order. Empty when the log was healthy.
	Ranges []RepairedRange
	// Changed says that files were changed: false for a healthy log and
	// for a dry run.
	Changed bool
	DryRun  bool
	// StartOffset and EndOffset are the log's after the repair, as the
	// verifying Open found them; for a dry run or a healthy log, as the
	// scrub found them (EndOffset then excludes a torn tail).
	StartOffset, EndOffset int64
}

// RepairedRange is one damaged range and what Repair did with it.
type RepairedRange struct {
	DamagedRange
	// Quarantine is the path of the file holding the range's bytes as
	// they were, "" for a range of no bytes (offsets missing between two
	// segments).
	Quarantine string
	// Placeholders is the number of empty batches put in the range's
	// place to cover its offsets (one per 2^31-1 offsets); 0 when the
	// range held no offset or the log was truncated at its start.
	Placeholders int
	// Truncated says that the range ended the log (AtEnd) and the last
	// segment was cut at its start: the offsets from FirstOffset on will
	// be assigned again by later appends.
	Truncated bool
}

// Repair repairs the log in dir after Scrub, or Open, found damaged
// batches: it moves each damaged range's bytes to a quarantine file, puts
// in its place an empty placeholder batch covering exactly the offsets it
// held (or, when the range ends the log, truncates the last segment at its
// start), rebuilds the indexes, and verifies the result by opening the log
// with Open and closing it. The package documentation describes the files
// and the placeholder batch. A healthy log is left as it is (RepairReport
// Changed false), so running Repair twice changes nothing the second time.
//
// The log must not be open, in this process or another: Repair rewrites
// segment files under it. (The broker's `broker repair` holds the data
// dir's lock.)
//
// A crash during Repair never loses more than the damaged ranges: the
// quarantine files are written and fsynced first, a segment's new content
// is written to a temporary file, fsynced and renamed over the segment,
// and the clean-shutdown marker is removed and the recovery point lowered
// before any segment changes, so that Open validates the repaired
// segments. Running Repair again after a crash finishes the job.
func Repair(dir string, opts RepairOptions) (*RepairReport, error) {
	lo := opts.Log.WithDefaults()
	if err := lo.validate(); err != nil {
		return nil, err
	}
	fsys, logger := lo.FS, lo.Logger
	if !opts.DryRun {
		if err := removeRepairLeftovers(fsys, dir); err != nil {
			return nil, err
		}
	}
	sr, err := Scrub(context.Background(), dir, ScrubOptions{FS: fsys, BufferBytes: opts.BufferBytes})
	if err != nil {
		return nil, fmt.Errorf("repair %s: %w", dir, err)
	}
	rep := &RepairReport{Dir: dir, Scrub: sr, DryRun: opts.DryRun}
	if len(sr.Segments) > 0 {
		rep.StartOffset, rep.EndOffset = sr.Segments[0].Base, sr.Segments[len(sr.Segments)-1].End
	}
	for _, s := range sr.Segments {
		if s.Skipped != nil {
			return nil, fmt.Errorf("repair %s: %w; is the log open? Stop its owner first", dir, s.Skipped)
		}
	}
	if sr.OK() {
		logger.Info("log is healthy; nothing to repair", "dir", dir, "batches", sr.Batches, "bytes", sr.Bytes)
		return rep, nil
	}
	r := &repairer{fs: fsys, dir: dir, bufSize: max(opts.BufferBytes, minScrubBufferBytes)}
	if opts.BufferBytes == 0 {
		r.bufSize = DefaultScrubBufferBytes
	}
	for _, s := range sr.Segments {
		for _, d := range s.Damaged {
			if !d.AtEnd && d.LastOffset-s.Base > math.MaxUint32 {
				return nil, fmt.Errorf("repair %s: %w; offsets %d to %d are missing, more than one segment can hold: restore the log from a copy",
					dir, d.Err, d.FirstOffset, d.LastOffset)
			}
			rr := RepairedRange{DamagedRange: d}
			switch {
			case d.AtEnd:
				rr.Truncated = true
			case d.Offsets() > 0:
				rr.Placeholders = int((d.Offsets() + math.MaxInt32 - 1) / math.MaxInt32)
			}
			rep.Ranges = append(rep.Ranges, rr)
		}
	}
	if opts.DryRun {
		for i := range rep.Ranges {
			if err := r.planQuarantine(&rep.Ranges[i]); err != nil {
				return nil, fmt.Errorf("repair %s: %w", dir, err)
			}
		}
		return rep, nil
	}

	// From here on, the next Open must validate the repaired segments,
	// whatever the crash: remove the marker and lower the recovery point
	// before changing any segment.
	rep.Changed = true
	if err := fsys.Remove(filepath.Join(dir, cleanShutdownName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return rep, fmt.Errorf("repair %s: remove clean-shutdown marker: %w", dir, err)
	}
	if err := fsys.SyncDir(dir); err != nil {
		return rep, fmt.Errorf("repair %s: fsync directory: %w", dir, err)
	}
	firstBase := int64(-1)
	for _, s := range sr.Segments {
		if len(s.Damaged) > 0 {
			firstBase = s.Base
			break
		}
	}
	if rp, err := readRecoveryPoint(fsys, dir); err == nil && rp > firstBase {
		if err := writeRecoveryPoint(fsys, dir, firstBase); err != nil {
			return rep, fmt.Errorf("repair %s: %w", dir, err)
		}
	}

	i := 0
	for _, s := range sr.Segments {
		if len(s.Damaged) == 0 {
			continue
		}
		ranges := rep.Ranges[i : i+len(s.Damaged)]
		i += len(s.Damaged)
		if err := r.segment(s, ranges, logger); err != nil {
			return rep, fmt.Errorf("repair %s: %w", dir, err)
		}
	}

	// Verify: a scrub finds nothing, and Open rebuilds the indexes and
	// validates from the lowered recovery point.
	after, err := Scrub(context.Background(), dir, ScrubOptions{FS: fsys, BufferBytes: opts.BufferBytes})
	if err != nil {
		return rep, fmt.Errorf("repair %s: verify: %w", dir, err)
	}
	if !after.OK() {
		d := after.Damaged()[0]
		return rep, fmt.Errorf("repair %s: verify: the repaired log still has %d damaged ranges, the first: %w", dir, len(after.Damaged()), d.Err)
	}
	l, err := Open(dir, lo)
	if err != nil {
		return rep, fmt.Errorf("repair %s: verify: open the repaired log: %w", dir, err)
	}
	rep.StartOffset, rep.EndOffset = l.StartOffset(), l.EndOffset()
	if err := l.Close(); err != nil {
		return rep, fmt.Errorf("repair %s: verify: close the repaired log: %w", dir, err)
	}
	logger.Info("log repaired", "dir", dir, "ranges", len(rep.Ranges), "start_offset", rep.StartOffset, "end_offset", rep.EndOffset)
	return rep, nil
}

// repairer rewrites the damaged segments of one log.
type repairer struct {
	fs      FS
	dir     string
	bufSize int
	buf     []byte
}

// segment repairs one segment file with these damaged ranges (in file
// order): quarantine files first, then the new content through a temporary
// file renamed over the segment, then the stale index files go.
func (r *repairer) segment(s SegmentScrub, ranges []RepairedRange, logger *slog.Logger) error {
	src, err := r.fs.OpenFile(s.Path, os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("open segment: %w", err)
	}
	defer src.Close()
	for i := range ranges {
		d := &ranges[i]
		if d.End == d.Start {
			continue
		}
		if d.Quarantine, err = r.quarantine(src, d.DamagedRange); err != nil {
			return err
		}
		logger.Info("damaged range moved to quarantine", "file", s.Path, "pos", d.Start, "bytes", d.End-d.Start,
			"quarantine", d.Quarantine, "first_offset", d.FirstOffset, "last_offset", d.LastOffset, "reason", d.Err.Err)
	}
	if err := r.fs.SyncDir(r.dir); err != nil {
		return fmt.Errorf("fsync directory %s: %w", r.dir, err)
	}

	tmp := s.Path + repairTmpSuffix
	dst, err := r.fs.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	err = r.rewrite(src, dst, s, ranges)
	if err == nil {
		if err = dst.Sync(); err != nil {
			err = fmt.Errorf("fsync %s: %w", tmp, err)
		}
	}
	if cerr := dst.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close %s: %w", tmp, cerr)
	}
	if err != nil {
		return err
	}
	if err := r.fs.Rename(tmp, s.Path); err != nil {
		return fmt.Errorf("replace %s: %w", s.Path, err)
	}
	if err := r.fs.SyncDir(r.dir); err != nil {
		return fmt.Errorf("fsync directory %s: %w", r.dir, err)
	}
	for _, d := range ranges {
		if d.Truncated {
			logger.Warn("log truncated at a damaged range that ends it", "file", s.Path, "pos", d.Start, "end_offset", d.FirstOffset)
		} else if d.Placeholders > 0 {
			logger.Info("placeholder batch covers the lost offsets", "file", s.Path, "pos", d.Start, "first_offset", d.FirstOffset, "last_offset", d.LastOffset)
		}
	}
	// The index files no longer match the segment: Open rebuilds them.
	base := strings.TrimSuffix(s.Path, logSuffix)
	for _, name := range []string{base + indexSuffix, base + timeIndexSuffix} {
		if err := r.fs.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", name, err)
		}
	}
	if err := r.fs.SyncDir(r.dir); err != nil {
		return fmt.Errorf("fsync directory %s: %w", r.dir, err)
	}
	return nil
}

// rewrite writes to dst the segment's bytes without the damaged ranges: a
// placeholder batch in place of each (none for a range holding no offset),
// and nothing from a range that ends the log on.
func (r *repairer) rewrite(src, dst File, s SegmentScrub, ranges []RepairedRange) error {
	pos := int64(0)
	for _, d := range ranges {
		if err := r.copy(dst, src, s.Path, pos, d.Start); err != nil {
			return err
		}
		if d.Truncated {
			return nil
		}
		for off := d.FirstOffset; off <= d.LastOffset; {
			n := min(d.LastOffset-off+1, math.MaxInt32)
			b := placeholderBatch(off, int32(n-1), d.prevTimestamp, d.prevEpoch)
			if _, err := dst.Write(b); err != nil {
				return fmt.Errorf("write %s: %w", s.Path+repairTmpSuffix, err)
			}
			off += n
		}
		pos = d.End
	}
	return r.copy(dst, src, s.Path, pos, s.Size)
}

// copy copies the bytes [from, to) of src to dst through the buffer.
func (r *repairer) copy(dst, src File, srcPath string, from, to int64) error {
	if cap(r.buf) < r.bufSize {
		r.buf = make([]byte, r.bufSize)
	}
	for p := from; p < to; {
		b := r.buf[:min(int64(r.bufSize), to-p)]
		if err := readFull(src, b, p); err != nil {
			return fmt.Errorf("read %s at byte %d: %w", srcPath, p, err)
		}
		if _, err := dst.Write(b); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		p += int64(len(b))
	}
	return nil
}

// planQuarantine sets the quarantine file a dry run would write for d.
func (r *repairer) planQuarantine(d *RepairedRange) error {
	if d.End == d.Start {
		return nil
	}
	src, err := r.fs.OpenFile(d.Segment, os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("open segment: %w", err)
	}
	defer src.Close()
	d.Quarantine, _, err = r.quarantineName(src, d.DamagedRange)
	return err
}

// quarantineName chooses the quarantine file of d: the first name that is
// free or holds the same bytes (left by an interrupted repair; exists is
// then true).
func (r *repairer) quarantineName(src File, d DamagedRange) (name string, exists bool, err error) {
	for n := 0; n < maxQuarantineNames; n++ {
		name := quarantineName(d, n)
		same, err := r.sameContent(name, src, d)
		if err != nil {
			return "", false, err
		}
		if same {
			return name, true, nil
		}
		if _, err := r.fs.Stat(name); errors.Is(err, fs.ErrNotExist) {
			return name, false, nil
		} else if err != nil {
			return "", false, fmt.Errorf("stat %s: %w", name, err)
		}
	}
	return "", false, fmt.Errorf("quarantine %s at byte %d: %d quarantine files of that name exist; move them away", d.Segment, d.Start, maxQuarantineNames)
}

// quarantine writes the bytes of d to a quarantine file, fsynced, and
// returns its path. If a file of that name holds the same bytes (left by an
// interrupted repair), it is kept; if it holds others, a numbered name is
// chosen.
func (r *repairer) quarantine(src File, d DamagedRange) (string, error) {
	name, exists, err := r.quarantineName(src, d)
	if err != nil || exists {
		return name, err
	}
	tmp := name + repairTmpSuffix
	f, err := r.fs.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return "", fmt.Errorf("create quarantine file: %w", err)
	}
	err = r.copy(f, src, d.Segment, d.Start, d.End)
	if err == nil {
		if err = f.Sync(); err != nil {
			err = fmt.Errorf("fsync %s: %w", tmp, err)
		}
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close %s: %w", tmp, cerr)
	}
	if err != nil {
		return "", err
	}
	if err := r.fs.Rename(tmp, name); err != nil {
		return "", fmt.Errorf("rename quarantine file: %w", err)
	}
	return name, nil
}

// quarantineName is the n-th name tried for the quarantine file of d:
// SEGMENT.log.quarantine-POS, then SEGMENT.log.quarantine-POS.2, .3, ...
func quarantineName(d DamagedRange, n int) string {
	name := d.Segment + quarantineInfix + strconv.FormatInt(d.Start, 10)
	if n > 0 {
		name += "." + strconv.Itoa(n+1)
	}
	return name
}

// sameContent reports whether the file name exists and holds exactly the
// bytes of d.
func (r *repairer) sameContent(name string, src File, d DamagedRange) (bool, error) {
	f, err := r.fs.OpenFile(name, os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("open %s: %w", name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("stat %s: %w", name, err)
	}
	if fi.Size() != d.End-d.Start {
		return false, nil
	}
	half := max(r.bufSize/2, 1)
	a, b := make([]byte, half), make([]byte, half)
	for p := int64(0); p < fi.Size(); {
		n := min(int64(half), fi.Size()-p)
		if err := readFull(f, a[:n], p); err != nil {
			return false, fmt.Errorf("read %s: %w", name, err)
		}
		if err := readFull(src, b[:n], d.Start+p); err != nil {
			return false, fmt.Errorf("read %s: %w", d.Segment, err)
		}
		if !bytes.Equal(a[:n], b[:n]) {
			return false, nil
		}
		p += n
	}
	return true, nil
}

// removeRepairLeftovers removes the temporary files of an interrupted
// repair.
func removeRepairLeftovers(fsys FS, dir string) error {
	entries, err := fsys.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("repair: list log %s: %w", dir, err)
	}
	removed := false
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), repairTmpSuffix) {
			if err := fsys.Remove(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("repair: remove leftover %s: %w", e.Name(), err)
			}
			removed = true
		}
	}
	if removed {
		if err := fsys.SyncDir(dir); err != nil {
			return fmt.Errorf("repair: fsync directory %s: %w", dir, err)
		}
	}
	return nil
}

// placeholderBatch returns the empty RecordBatch v2 that stands for lost
// offsets base..base+lastOffsetDelta: recordsCount 0, no producer (id,
// epoch and base sequence -1), attributes 0, both timestamps ts and the
// partitionLeaderEpoch epoch. Kafka keeps such batches after compaction
// empties a batch, and consumers skip them, moving past their last offset.
func placeholderBatch(base int64, lastOffsetDelta int32, ts int64, epoch int32) []byte {
	b := make([]byte, BatchHeaderSize)
	be := binary.BigEndian
	be.PutUint64(b, uint64(base))
	be.PutUint32(b[batchLengthPos:], BatchHeaderSize-batchLengthOverhead)
	be.PutUint32(b[leaderEpochPos:], uint32(epoch))
	b[magicPos] = batchMagic
	be.PutUint32(b[lastOffsetDeltaPos:], uint32(lastOffsetDelta))
	be.PutUint64(b[baseTimestampPos:], uint64(ts))
	be.PutUint64(b[maxTimestampPos:], uint64(ts))
	be.PutUint64(b[producerIDPos:], math.MaxUint64) // -1
	be.PutUint16(b[producerEpochPos:], math.MaxUint16)
	be.PutUint32(b[baseSequencePos:], math.MaxUint32)
	be.PutUint32(b[recordsCountPos:], 0)
	be.PutUint32(b[crcPos:], crc32.Checksum(b[attributesPos:], castagnoli))
	return b
}
