package commitlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// maxScratch bounds the buffer a Log keeps for copying a batch with its new
// base offset into one write; larger batches are written in two parts, an
// extra system call that matters little next to their size.
const maxScratch = 16 << 10

// Log is the partition log: a directory of segments holding RecordBatch v2
// batches, as described in the package documentation.
//
// One writer at a time: Append, rolling, Retain and SetOptions are serialised
// by an internal mutex. Read, OffsetForTime, Batches and the offset accessors
// never wait for an append or an fsync to finish: they read a snapshot of the
// segment list and the files with ReadAt. All methods are safe for concurrent
// use.
type Log struct {
	dir           string
	fs            FS
	logger        *slog.Logger
	now           func() time.Time
	maxBatchBytes int
	indexInterval int
	files         *FileCache          // holds the segments' open files
	ownFiles      bool                // files is the Log's own, closed by Close
	onSync        func(time.Duration) // Options.OnSync

	// syncMu serialises fsyncs of the active segment (Sync), and keeps
	// Close from closing a file under an fsync (Retain cannot: Sync holds
	// the segment's files in the FileCache). Lock order:
	// syncMu, then mu.
	syncMu sync.Mutex

	// mu serialises writers: Append, rolling, Retain's choice of segments,
	// SetOptions and Close.
	mu      sync.Mutex
	opts    Options     // guarded by mu; SetOptions changes the rolling and retention fields
	active  *segment    // guarded by mu; the last segment
	scratch []byte      // guarded by mu
	err     error       // guarded by mu; the failure that stopped writes, wrapping ErrFailed
	failed  atomic.Bool // err != nil, readable without mu

	// Healing state, guarded by mu. syncedPos is the byte position in the
	// active segment below which it is fsynced; a failed fsync makes
	// everything after it suspect. sealedActive means a roll sealed the
	// active segment (wrote and fsynced its indexes) but failed to create
	// the next one.
	failure failureKind
	// fsyncMu serialises the fsyncs of the active segment's log (Sync's
	// and a roll's seal), and fsyncBad records that one failed: Linux
	// reports a failed writeback once, marks the pages clean, and a later
	// fsync succeeds without writing them, so no fsync is trusted after a
	// failure until Heal has truncated what it may have lost. fsyncMu is
	// the innermost lock.
	fsyncMu      sync.Mutex
	fsyncBad     atomic.Bool
	syncedPos    int64
	sealedActive bool
	healAfter    time.Time     // no Heal attempt before this
	healWait     time.Duration // the last backoff between attempts
	healedAt     time.Time     // when Heal last succeeded
	relapse      bool          // the failure came soon after a heal
	truncations  atomic.Int64  // heals that removed appended batches

	segs    atomic.Pointer[[]*segment] // copy on write, oldest first
	end     atomic.Int64               // EndOffset
	durable atomic.Int64               // DurableOffset
	closed  atomic.Bool

	closeOnce sync.Once
	closeErr  error
	stop      chan struct{} // closed by Close to stop the flusher; nil under FlushAlways
	flusher   sync.WaitGroup
}

// Open opens the log in dir, creating the directory if it is missing, and
// recovers it: after a clean shutdown it trusts the files (checking the index
// files and the active segment's batch chain); after an unclean one it
// validates every batch from the recovery point on, truncates a torn tail of
// the active segment and rebuilds indexes, as the package documentation
// describes. An invalid batch that is not a torn tail makes Open fail with a
// *CorruptionError. On return every offset below EndOffset is durable. Under
// FlushInterval, Open starts the goroutine that fsyncs periodically; Close
// stops it.
func Open(dir string, opts Options) (*Log, error) {
	opts = opts.WithDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	l := &Log{
		dir:           dir,
		fs:            opts.FS,
		logger:        opts.Logger,
		now:           opts.Now,
		maxBatchBytes: opts.MaxBatchBytes,
		indexInterval: opts.IndexIntervalBytes,
		opts:          opts,
		files:         opts.FileCache,
		onSync:        opts.OnSync,
	}
	if l.files == nil {
		l.files, l.ownFiles = NewFileCache(FileCacheOptions{}), true
	}
	if err := l.load(); err != nil {
		if l.ownFiles {
			l.files.Close()
		}
		return nil, err
	}
	if opts.Flush == FlushInterval {
		l.stop = make(chan struct{})
		l.flusher.Add(1)
		go l.flushEvery(opts.FlushInterval, opts.OnDurable)
	}
	return l, nil
}

// Append validates batch with ParseBatch, rejects one larger than
// Options.MaxBatchBytes with ErrBatchTooLarge, and appends it with the
// offsets [EndOffset, EndOffset+LastOffsetDelta]: the batch is stored as
// given except for its first 8 bytes, the base offset, which are written with
// the assigned value (the caller's slice is not modified). Append rolls the
// segment first if the batch would make it exceed Options.SegmentBytes or it
// is older than Options.SegmentAge. It returns the assigned base offset
// without waiting for durability: see Sync. Appends are serialised; after
// Close Append returns ErrClosed, and after an I/O failure an error wrapping
// ErrFailed.
func (l *Log) Append(batch []byte) (base int64, err error) {
	if len(batch) > l.maxBatchBytes {
		return 0, fmt.Errorf("%w: %d bytes, the limit is %d (Options.MaxBatchBytes)", ErrBatchTooLarge, len(batch), l.maxBatchBytes)
	}
	h, err := ParseBatch(batch)
	if err != nil {
		return 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return 0, ErrClosed
	}
	if l.err != nil {
		return 0, l.err
	}
	now := l.now()
	h.BaseOffset = l.end.Load()
	if l.shouldRoll(h, now) {
		if err := l.roll(); err != nil {
			return 0, l.fail(failedRoll, err)
		}
	}
	s := l.active
	pos := s.size.Load()
	if err := l.write(s.log, h.BaseOffset, batch); err != nil {
		return 0, l.fail(failedWrite, fmt.Errorf("append to %s: %w", s.logPath, err))
	}
	if pos == 0 {
		s.created = now
	}
	s.track(pos, h, l.indexInterval)
	// Publish to readers: the bytes, then the offsets.
	s.size.Store(pos + int64(len(batch)))
	l.end.Store(h.LastOffset() + 1)
	return h.BaseOffset, nil
}

// shouldRoll reports whether the batch must go to a new segment. The caller
// holds mu.
func (l *Log) shouldRoll(h BatchHeader, now time.Time) bool {
	s := l.active
	size := s.size.Load()
	if size == 0 {
		return false
	}
	return size+int64(h.Size()) > l.opts.SegmentBytes ||
		now.Sub(s.created) >= l.opts.SegmentAge ||
		h.LastOffset()-s.base > math.MaxUint32 // relative offsets are uint32
}

// write writes batch to f with base as its base offset, leaving the caller's
// slice unchanged. The caller holds mu.
func (l *Log) write(f File, base int64, batch []byte) error {
	if len(batch) <= maxScratch {
		b := append(l.scratch[:0], batch...)
		binary.BigEndian.PutUint64(b, uint64(base))
		l.scratch = b
		_, err := f.Write(b)
		return err
	}
	var head [8]byte
	binary.BigEndian.PutUint64(head[:], uint64(base))
	if _, err := f.Write(head[:]); err != nil {
		return err
	}
	_, err := f.Write(batch[8:])
	return err
}

// roll seals the active segment (fsyncing it and its indexes), creates the
// next one at EndOffset and records the new recovery point, which fsyncs the
// directory. The caller holds mu.
func (l *Log) roll() error {
	old := l.active
	if !l.sealedActive {
		if err := old.seal(func() error { return l.syncActive(old) }); err != nil {
			return fmt.Errorf("roll segment %d: %w", old.base, err)
		}
		l.syncedPos, l.sealedActive = old.size.Load(), true
	}
	base := l.end.Load()
	l.advanceDurable(base)
	s, err := createSegment(l.fs, l.dir, base)
	if err != nil {
		return err
	}
	// The new segment's files must be durable before anything is
	// appended to them.
	if err := l.fs.SyncDir(l.dir); err != nil {
		s.close()
		l.removeSegmentFiles(base)
		return fmt.Errorf("create segment %d: fsync directory %s: %w", base, l.dir, err)
	}
	l.files.activate(&s.h, s.writerFiles())
	segs := append(slices.Clone(*l.segs.Load()), s)
	l.segs.Store(&segs)
	l.active = s
	l.files.retire(&old.h) // its files are now the FileCache's to close
	l.syncedPos, l.sealedActive = 0, false
	// A recovery point below the truth only makes the next recovery after
	// a crash validate more, so failing to advance it is not a failure of
	// the log.
	if err := writeRecoveryPoint(l.fs, l.dir, base); err != nil {
		l.logger.Warn("could not advance the recovery point; a recovery after a crash will validate more segments", "dir", l.dir, "err", err)
	}
	l.logger.Debug("rolled segment", "dir", l.dir, "segment", old.base, "bytes", old.size.Load(), "next_segment", base)
	return nil
}

// syncActive fsyncs s's log, s being (or having just been) the active
// segment, serialised with every other such fsync. After a failed one it
// refuses without trying: see fsyncBad.
func (l *Log) syncActive(s *segment) error {
	l.fsyncMu.Lock()
	defer l.fsyncMu.Unlock()
	if l.fsyncBad.Load() {
		return fmt.Errorf("fsync %s: an earlier fsync failed, so the pages it covered may be lost; the log must heal first", s.logPath)
	}
	start := time.Now()
	err := s.log.Sync()
	if l.onSync != nil {
		l.onSync(time.Since(start))
	}
	if err != nil {
		l.fsyncBad.Store(true)
		return fmt.Errorf("fsync %s: %w", s.logPath, err)
	}
	return nil
}

// failureKind says what failed, and so what Heal must undo.
type failureKind int

const (
	failedWrite failureKind = iota + 1 // an append's write: drop its partial bytes
	failedSync                         // an fsync: drop what it may not have made durable
	failedRoll                         // a roll: as failedSync, and any files of the next segment
)

// fail records err as the failure that stops writes and returns it. The
// caller holds mu.
func (l *Log) fail(kind failureKind, err error) error {
	if l.err == nil {
		l.err = fmt.Errorf("%w: %w", ErrFailed, err)
		l.failure = kind
		l.failed.Store(true)
		// A failure soon after a heal is the same fault still there
		// (a disk still full): space the next attempt further out and
		// log it quietly.
		now := time.Now()
		l.relapse = !l.healedAt.IsZero() && now.Sub(l.healedAt) < max(2*l.healWait, time.Second)
		if l.relapse {
			l.healWait = min(max(2*l.healWait, minHealWait), maxHealWait)
			l.healAfter = now.Add(l.healWait)
			l.logger.Debug("log failed again soon after healing", "dir", l.dir, "retry_in", l.healWait, "err", err)
		} else {
			l.healWait = 0
			l.logger.Error("log failed; appends are refused until it heals", "dir", l.dir, "err", err)
		}
	} else if kind > l.failure {
		l.failure = kind // undo the most on heal
	}
	return l.err
}

// Sync returns once every offset below through is durable (fsynced); a
// through beyond EndOffset is treated as EndOffset, unless a Heal has ever
// removed offsets (then such offsets may be the removed ones, and Sync fails
// with ErrFailed). Concurrent callers share
// fsyncs (group commit): Sync fsyncs the active segment up to the EndOffset it
// sees when it starts, and a caller whose offsets an fsync started after its
// append covers returns without another. Appends continue while an fsync
// runs. A failed fsync fails the log (ErrFailed), and no later fsync is
// trusted until Heal (see Log.syncActive). After Close, Sync returns
// ErrClosed unless the offsets are already durable.
func (l *Log) Sync(through int64) error {
	if l.durable.Load() >= through {
		return nil
	}
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	if l.durable.Load() >= through {
		return nil // an fsync that ran while we waited covered us
	}
	l.mu.Lock()
	if l.closed.Load() {
		l.mu.Unlock()
		return ErrClosed
	}
	if l.err != nil {
		err := l.err
		l.mu.Unlock()
		return err
	}
	end, s, pos := l.end.Load(), l.active, l.active.size.Load()
	if through > end && l.truncations.Load() > 0 {
		// The caller appended offsets that a heal has removed since:
		// they will never be durable.
		l.mu.Unlock()
		return fmt.Errorf("%w: offsets %d to %d were removed when the log healed after a failed fsync", ErrFailed, end, through-1)
	}
	// Hold s's files: a roll after the snapshot hands them to the
	// FileCache, which could close them under the fsync.
	l.files.pin(&s.h)
	l.mu.Unlock()
	defer l.files.release(&s.h)
	if end <= l.durable.Load() {
		return nil
	}
	// Older segments were fsynced when rolled; a roll after the snapshot
	// fsyncs s too, and Close waits for syncMu before closing s.
	err := l.syncActive(s)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		return l.fail(failedSync, err)
	}
	if l.active == s && pos > l.syncedPos {
		l.syncedPos = pos
	}
	l.advanceDurable(end)
	return nil
}

// advanceDurable raises DurableOffset to off if it is below.
func (l *Log) advanceDurable(off int64) {
	for {
		cur := l.durable.Load()
		if cur >= off || l.durable.CompareAndSwap(cur, off) {
			return
		}
	}
}

// flushEvery fsyncs every d until Close, under FlushInterval, and calls
// onDurable (if set) after an fsync that advanced DurableOffset. While the
// log is failed its fsyncs are skipped (the failure is logged once); they
// resume once Heal succeeds.
func (l *Log) flushEvery(d time.Duration, onDurable func()) {
	defer l.flusher.Done()
	t := time.NewTicker(d)
	defer t.Stop()
	logged := false
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			before := l.durable.Load()
			if err := l.Sync(l.EndOffset()); err != nil {
				if errors.Is(err, ErrClosed) {
					return
				}
				if !logged {
					l.logger.Error("periodic fsync failed; periodic fsyncs resume once the log heals", "dir", l.dir, "err", err)
					logged = true
				}
				continue
			}
			logged = false
			if onDurable != nil && l.durable.Load() > before {
				onDurable()
			}
		}
	}
}

// StartOffset returns the log start offset: the first offset retained.
func (l *Log) StartOffset() int64 { return (*l.segs.Load())[0].base }

// EndOffset returns the log end offset: the offset the next Append assigns.
func (l *Log) EndOffset() int64 { return l.end.Load() }

// DurableOffset returns the offset below which every batch has been fsynced.
// After Open it equals EndOffset.
func (l *Log) DurableOffset() int64 { return l.durable.Load() }

// ActiveSegmentBase returns the base offset of the active segment, the one
// appends go to.
func (l *Log) ActiveSegmentBase() int64 {
	segs := *l.segs.Load()
	return segs[len(segs)-1].base
}

// SegmentBases returns the base offset of every segment, oldest first; the
// last is the active segment's.
func (l *Log) SegmentBases() []int64 {
	segs := *l.segs.Load()
	bases := make([]int64, len(segs))
	for i, s := range segs {
		bases[i] = s.base
	}
	return bases
}

// Size returns the total size in bytes of the log's segment (.log) files.
func (l *Log) Size() int64 {
	var n int64
	for _, s := range *l.segs.Load() {
		n += s.size.Load()
	}
	return n
}

// Close fsyncs the active segment and its indexes, records the recovery
// point, writes the clean-shutdown marker that lets the next Open skip
// validation, stops the flusher goroutine and closes the files, releasing
// the log's segments from its FileCache (files a read holds close when it
// returns). It waits for an fsync in progress. Close is idempotent: later
// calls return the first call's result. A log that failed is closed
// without the marker, so the next Open recovers it.
func (l *Log) Close() error {
	l.closeOnce.Do(func() { l.closeErr = l.shutdown(true) })
	return l.closeErr
}

// shutdown closes the log; clean writes the final state and the marker.
func (l *Log) shutdown(clean bool) error {
	if l.stop != nil {
		close(l.stop)
		l.flusher.Wait() // before syncMu: the flusher may hold it
	}
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed.Store(true)
	var err error
	if clean {
		if err = l.err; err == nil {
			err = l.writeCleanShutdown()
		}
	}
	// Files that reads still hold close when the reads let go.
	for _, s := range *l.segs.Load() {
		err = errors.Join(err, l.files.drop(&s.h))
	}
	if l.ownFiles {
		l.files.Close()
	}
	return err
}

// writeCleanShutdown makes everything durable, then writes the recovery
// point and the clean-shutdown marker: the marker must not exist unless the
// files it vouches for, indexes included, are on disk. The caller holds mu.
func (l *Log) writeCleanShutdown() error {
	if err := l.active.flush(func() error { return l.syncActive(l.active) }); err != nil {
		return err
	}
	end := l.end.Load()
	l.advanceDurable(end)
	if err := writeRecoveryPoint(l.fs, l.dir, end); err != nil {
		return err
	}
	return writeCleanMarker(l.fs, l.dir)
}

// Delete closes the log without writing the clean-shutdown marker and
// removes its directory with every file in it.
func (l *Log) Delete() error {
	l.closeOnce.Do(func() { l.closeErr = l.shutdown(false) })
	entries, err := l.fs.ReadDir(l.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete log %s: %w", l.dir, err)
	}
	for _, e := range entries {
		if err := l.fs.Remove(filepath.Join(l.dir, e.Name())); err != nil {
			return fmt.Errorf("delete log %s: %w", l.dir, err)
		}
	}
	if err := l.fs.Remove(l.dir); err != nil {
		return fmt.Errorf("delete log %s: %w", l.dir, err)
	}
	return l.fs.SyncDir(filepath.Dir(l.dir))
}
