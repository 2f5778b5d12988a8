package commitlog

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"
)

// Bounds of the wait between two Heal attempts of a log that stays failed:
// it doubles from the first to the second.
const (
	minHealWait = 100 * time.Millisecond
	maxHealWait = 10 * time.Second
)

// HealResult says what Heal undid.
type HealResult struct {
	// Healed is true when the log accepts appends again.
	Healed bool
	// From and To bound the offsets [From, To) that Heal removed: batches
	// appended after the last successful fsync, when an fsync (or a roll,
	// which fsyncs) failed. Their Syncs had not returned, so under
	// FlushAlways none of them was acknowledged. Empty (From == To) when
	// nothing was removed.
	From, To int64
}

// Failed reports whether a write, fsync or roll failed and the log refuses
// appends until Heal succeeds.
func (l *Log) Failed() bool { return l.failed.Load() }

// Truncations returns how many times Heal removed appended batches. A caller
// that appended a batch and then finds this count changed before its Sync
// returned must not acknowledge the batch: it may have been removed (see
// Heal).
func (l *Log) Truncations() int64 { return l.truncations.Load() }

// Heal tries to bring a failed log back into service, so that a transient
// fault (a full disk, too many open files, one I/O error) does not stop it
// for good. It undoes what the failure may have left half done, then clears
// the failure:
//
//   - after a failed write, the partial bytes of that append are truncated
//     away;
//   - after a failed fsync, everything written to the active segment since
//     the last successful fsync is truncated away, because the kernel may
//     have dropped those pages (their offsets are returned in the result,
//     and Truncations is incremented);
//   - after a failed roll, the same, and the files of the segment the roll
//     was creating are removed; if the roll had sealed the active segment,
//     its indexes are loaded back into memory.
//
// The active segment is then fsynced, which also tests the disk. If any step
// fails the log stays failed and Heal returns the failure. Attempts are
// spaced by a wait that doubles from 100ms to 10s while Heal fails or the log
// fails again soon after healing (a disk still full), and a call before the
// next attempt is due returns the current failure at once. Heal on a log that has
// not failed does nothing. It is safe to call concurrently with every other
// method; appends and Syncs wait for it.
func (l *Log) Heal() (HealResult, error) {
	if !l.failed.Load() {
		return HealResult{Healed: true}, nil
	}
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return HealResult{}, ErrClosed
	}
	if l.err == nil {
		return HealResult{Healed: true}, nil
	}
	now := time.Now()
	if now.Before(l.healAfter) {
		return HealResult{}, l.err
	}
	res, err := l.heal()
	if err != nil {
		l.healWait = min(max(2*l.healWait, minHealWait), maxHealWait)
		l.healAfter = now.Add(l.healWait)
		l.logger.Warn("log still failed; healing it again later", "dir", l.dir, "retry_in", l.healWait, "err", err)
		return HealResult{}, fmt.Errorf("%w (healing failed: %w)", l.err, err)
	}
	cause := l.err
	l.err, l.failure, l.healedAt = nil, 0, now
	l.failed.Store(false)
	res.Healed = true
	switch {
	case res.To > res.From:
		l.truncations.Add(1)
		l.logger.Warn("log healed; batches written after the last successful fsync were removed",
			"dir", l.dir, "from_offset", res.From, "to_offset", res.To, "cause", cause)
	case l.relapse:
		l.logger.Debug("log healed", "dir", l.dir, "cause", cause)
	default:
		l.logger.Info("log healed", "dir", l.dir, "cause", cause)
	}
	return res, nil
}

// heal does Heal's work. The caller holds syncMu and mu.
func (l *Log) heal() (HealResult, error) {
	s := l.active
	end := l.end.Load()
	res := HealResult{From: end, To: end}
	if l.failure == failedRoll && s.base != end {
		// The next segment would start at end: remove what the roll
		// created of it, or the next roll's exclusive create fails.
		if err := l.removeSegmentFiles(end); err != nil {
			return res, err
		}
	}
	target := s.size.Load()
	if l.failure != failedWrite || l.fsyncBad.Load() {
		target = l.syncedPos
	}
	if err := s.log.Truncate(target); err != nil {
		return res, fmt.Errorf("truncate %s to %d bytes: %w", s.logPath, target, err)
	}
	// This fsync runs although fsyncBad may be set: what it covers is
	// below syncedPos, made durable by the last fsync that succeeded
	// before any failure. If it fails, the next attempt must distrust
	// everything after syncedPos too.
	l.fsyncMu.Lock()
	err := s.log.Sync()
	l.fsyncMu.Unlock()
	if err != nil {
		l.failure = max(l.failure, failedSync)
		return res, fmt.Errorf("fsync %s: %w", s.logPath, err)
	}
	switch {
	case target < s.size.Load(), l.failure == failedRoll && !l.sealedActive:
		// Batches were removed, or a seal failed part way through
		// writing the indexes: rebuild the writer state and the
		// in-memory indexes from what is left. What is left was
		// fsynced, so an invalid batch in it is corruption, never a
		// torn tail to cut.
		s.size.Store(target)
		if err := l.validateTorn(s, true, false); err != nil {
			l.failure = max(l.failure, failedSync)
			return res, err
		}
		l.end.Store(s.next)
		res.From = s.next
		l.sealedActive = false
	case l.sealedActive:
		// The roll wrote and fsynced the indexes, then failed to create
		// the next segment: serve the indexes from memory again, as
		// the active segment's.
		for _, x := range []*index{&s.offIdx, &s.timeIdx} {
			if err := x.load(); err != nil {
				return res, fmt.Errorf("reload %s: %w", x.path, err)
			}
		}
		l.sealedActive = false
	}
	l.fsyncBad.Store(false)
	l.syncedPos = s.size.Load()
	l.advanceDurable(l.end.Load())
	return res, nil
}

// removeSegmentFiles removes whatever files exist of the segment with this
// base offset, and fsyncs the directory.
func (l *Log) removeSegmentFiles(base int64) error {
	for _, suffix := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
		name := filepath.Join(l.dir, segmentName(base, suffix))
		if err := l.fs.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", name, err)
		}
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return fmt.Errorf("fsync directory %s: %w", l.dir, err)
	}
	return nil
}
