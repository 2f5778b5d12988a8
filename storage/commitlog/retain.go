package commitlog

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Retain applies the retention options now; the caller schedules it (the
// broker runs it periodically). It first rolls the active segment if it is
// older than Options.SegmentAge, or if all its data is past RetentionAge and
// already durable, so that it can be deleted. Then it deletes the oldest
// closed segments, as a prefix of the log, while a segment's newest batch
// MaxTimestamp (the file's modification time if no batch has a timestamp) is
// older than RetentionAge, or while the log without the segment is still at
// least RetentionBytes. The active segment and data at or above
// DurableOffset are never deleted. StartOffset moves to the first remaining
// segment's base; readers still reading a deleted segment get
// ErrOffsetOutOfRange. Retain returns the number of segments deleted.
func (l *Log) Retain() (deleted int, err error) {
	return l.deleteSegments(l.expire())
}

// DeleteBefore deletes the oldest closed segments that hold only offsets
// below offset: what a reader of the log has consumed for good (the
// gateway's spool, once its forwarder has passed them). Like Retain it never
// deletes the active segment or data at or above DurableOffset, and
// StartOffset moves to the first remaining segment's base. It returns the
// number of segments deleted.
func (l *Log) DeleteBefore(offset int64) (deleted int, err error) {
	return l.deleteSegments(l.cutPrefix(func(segs []*segment) (int, error) {
		n, limit := 0, min(offset, l.durable.Load())
		for n < len(segs)-1 && segs[n+1].base <= limit {
			n++
		}
		return n, nil
	}))
}

// deleteSegments closes and removes victims, segments already taken out of
// the segment list. Their files close now, or when the last read (or a Sync
// that took its snapshot before a victim was rolled) using them lets go;
// removing an open file is fine, its reads go on.
func (l *Log) deleteSegments(victims []*segment, err error) (int, error) {
	if err != nil || len(victims) == 0 {
		return 0, err
	}
	for _, s := range victims {
		err = errors.Join(err, l.files.drop(&s.h))
	}
	for _, s := range victims {
		err = errors.Join(err, s.remove(l.fs))
	}
	if serr := l.fs.SyncDir(l.dir); serr != nil {
		err = errors.Join(err, fmt.Errorf("fsync directory %s: %w", l.dir, serr))
	}
	return len(victims), err
}

// expire rolls the active segment if due and removes the expired segments
// from the segment list, returning them for deletion.
func (l *Log) expire() ([]*segment, error) {
	now := l.now()
	return l.cutPrefix(func(segs []*segment) (int, error) {
		roll, err := l.shouldRollForRetention(now)
		if err != nil {
			return 0, err
		}
		if roll {
			if err := l.roll(); err != nil {
				return 0, l.fail(failedRoll, err)
			}
			segs = *l.segs.Load()
		}
		var total int64
		for _, s := range segs {
			total += s.size.Load()
		}
		durable := l.durable.Load()
		n := 0
		for ; n < len(segs)-1 && segs[n+1].base <= durable; n++ {
			s := segs[n]
			expired, err := l.expired(s, now)
			if err != nil {
				return 0, err
			}
			bySize := l.opts.RetentionBytes >= 0 && total-s.size.Load() >= l.opts.RetentionBytes
			if !expired && !bySize {
				break
			}
			total -= s.size.Load()
		}
		return n, nil
	})
}

// cutPrefix takes, under mu, the first n segments out of the segment list,
// n being what choose returns for the current list, and returns them for
// deletion. choose may roll the active segment; it must then return a count
// for the list after the roll.
func (l *Log) cutPrefix(choose func(segs []*segment) (int, error)) ([]*segment, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return nil, ErrClosed
	}
	if l.err != nil {
		return nil, l.err
	}
	n, err := choose(*l.segs.Load())
	if err != nil || n == 0 {
		return nil, err
	}
	segs := *l.segs.Load()
	victims, rest := segs[:n:n], slices.Clone(segs[n:])
	for _, s := range victims {
		s.deleted.Store(true)
	}
	l.segs.Store(&rest)
	l.logger.Debug("deleting segments", "dir", l.dir, "segments", n, "start_offset", rest[0].base)
	return victims, nil
}

// shouldRollForRetention reports whether Retain must roll the active
// segment: it is non-empty and older than SegmentAge, or its data is all
// expired and durable. The caller holds mu.
func (l *Log) shouldRollForRetention(now time.Time) (bool, error) {
	a := l.active
	if a.size.Load() == 0 {
		return false, nil
	}
	if now.Sub(a.created) >= l.opts.SegmentAge {
		return true, nil
	}
	if l.durable.Load() < l.end.Load() {
		return false, nil
	}
	return l.expired(a, now)
}

// expired reports whether segment s is past RetentionAge. The caller holds
// mu.
func (l *Log) expired(s *segment, now time.Time) (bool, error) {
	if l.opts.RetentionAge < 0 {
		return false, nil
	}
	newest, err := s.newestTime(l.fs)
	if err != nil {
		return false, err
	}
	return newest.Before(now.Add(-l.opts.RetentionAge)), nil
}

// SetOptions changes the rolling and retention options of an open log:
// SegmentBytes, SegmentAge, RetentionAge and RetentionBytes (zero values
// mean the defaults, as in Open). The other fields of o are ignored. The new
// values apply from the next Append or Retain. It returns an error wrapping
// ErrInvalidOptions for a value out of range, and ErrClosed after Close.
func (l *Log) SetOptions(o Options) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return ErrClosed
	}
	next := l.opts
	next.SegmentBytes, next.SegmentAge = o.SegmentBytes, o.SegmentAge
	next.RetentionAge, next.RetentionBytes = o.RetentionAge, o.RetentionBytes
	next = next.WithDefaults()
	if err := next.validate(); err != nil {
		return err
	}
	l.opts = next
	return nil
}
