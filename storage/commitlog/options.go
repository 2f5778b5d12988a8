package commitlog

import (
	"fmt"
	"log/slog"
	"math"
	"time"
)

// FlushPolicy says when appended batches are fsynced.
type FlushPolicy int

const (
	// FlushAlways leaves fsync to the caller: an append is durable once a
	// Sync covering its offsets returns. Concurrent Syncs share one fsync
	// (group commit). It is the default.
	FlushAlways FlushPolicy = iota
	// FlushInterval makes the Log's own goroutine fsync every
	// Options.FlushInterval. It is weaker: a machine crash (not a process
	// crash) loses what was appended since the last fsync, up to one
	// interval of data.
	FlushInterval
)

// String returns "always" or "interval", the names the broker's configuration
// uses.
func (p FlushPolicy) String() string {
	switch p {
	case FlushAlways:
		return "always"
	case FlushInterval:
		return "interval"
	}
	return fmt.Sprintf("FlushPolicy(%d)", int(p))
}

// Defaults that Options.WithDefaults fills in. They follow Kafka's topic
// configuration defaults where Kafka has one (named in parentheses).
const (
	DefaultSegmentBytes       = 1 << 30            // segment.bytes
	DefaultSegmentAge         = 7 * 24 * time.Hour // segment.ms
	DefaultRetentionAge       = 7 * 24 * time.Hour // retention.ms
	DefaultRetentionBytes     = -1                 // retention.bytes: unlimited
	DefaultIndexIntervalBytes = 4096               // index.interval.bytes
	DefaultFlushInterval      = time.Second
	DefaultMaxBatchBytes      = 1048588 // message.max.bytes
)

// Options configures a Log. The zero value of every field means its default;
// Open applies WithDefaults and rejects values out of range with an error
// wrapping ErrInvalidOptions.
type Options struct {
	// SegmentBytes is the size in bytes at which the active segment is
	// rolled: an append that would make it larger goes to a new segment
	// (a batch larger than SegmentBytes gets a segment of its own). At
	// most math.MaxInt32. Default 1 GiB (Kafka segment.bytes).
	SegmentBytes int64
	// SegmentAge rolls the active segment at the first append or Retain
	// after its first batch is this old. After Open, the age of a
	// non-empty active segment counts from its first batch's
	// MaxTimestamp (from the file's modification time if that batch has
	// none). Default 7 days (Kafka segment.ms).
	SegmentAge time.Duration
	// RetentionAge makes Retain delete closed segments whose newest
	// batch MaxTimestamp (or, when no batch has a timestamp, the file's
	// modification time) is older than this. Negative means unlimited.
	// Default 7 days (Kafka retention.ms).
	RetentionAge time.Duration
	// RetentionBytes makes Retain delete the oldest segments while the
	// log without that segment is still at least this many bytes.
	// Negative means unlimited; zero means the default, -1 (Kafka
	// retention.bytes).
	RetentionBytes int64
	// IndexIntervalBytes is the number of log bytes between sparse index
	// entries: a Read scans at most about this many bytes of headers
	// after the index lookup. Default 4096 (Kafka index.interval.bytes).
	IndexIntervalBytes int
	// Flush says when appends are fsynced. Default FlushAlways.
	Flush FlushPolicy
	// FlushInterval is the period of the fsync goroutine under
	// FlushInterval, in real time (not Now); ignored under FlushAlways.
	// Default 1s.
	FlushInterval time.Duration
	// OnDurable, if set, is called by the FlushInterval goroutine after
	// each of its fsyncs that made appended batches durable (DurableOffset
	// advanced), so that a reader of durable data need not poll. It must
	// not block, nor call Close.
	OnDurable func()
	// OnSync, if set, is called after each fsync of an active segment's
	// data file (by Sync, the FlushInterval goroutine, a roll or Close;
	// not recovery's or a heal's), failed ones included, with how long the fsync took: the broker's fsync
	// latency histogram. It is called with the log's innermost lock held,
	// so it must be quick and must not call the Log.
	OnSync func(time.Duration)
	// MaxBatchBytes is the largest batch, in bytes, Append accepts.
	// Between BatchHeaderSize and math.MaxInt32. Default 1048588 (Kafka
	// message.max.bytes).
	MaxBatchBytes int
	// FS is the file system. Default OSFS.
	FS FS
	// Now is the clock for segment age and retention. Default time.Now.
	Now func() time.Time
	// Logger receives recovery, repair and failure messages. Default: a
	// logger that discards everything.
	Logger *slog.Logger
	// FileCache, if set, holds the open files of the log's closed
	// segments, and bounds them together with every other log sharing
	// it; the caller closes it after closing those logs. Default nil: the
	// Log makes its own with the FileCacheOptions defaults (256 segments,
	// 1 minute idle) and closes it at Close.
	FileCache *FileCache
}

// WithDefaults returns o with every zero field set to its default.
func (o Options) WithDefaults() Options {
	if o.SegmentBytes == 0 {
		o.SegmentBytes = DefaultSegmentBytes
	}
	if o.SegmentAge == 0 {
		o.SegmentAge = DefaultSegmentAge
	}
	if o.RetentionAge == 0 {
		o.RetentionAge = DefaultRetentionAge
	}
	if o.RetentionBytes == 0 {
		o.RetentionBytes = DefaultRetentionBytes
	}
	if o.IndexIntervalBytes == 0 {
		o.IndexIntervalBytes = DefaultIndexIntervalBytes
	}
	if o.FlushInterval == 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.MaxBatchBytes == 0 {
		o.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if o.FS == nil {
		o.FS = OSFS
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// validate checks the fields of o after WithDefaults.
func (o Options) validate() error {
	bad := func(field string, v any, want string) error {
		return fmt.Errorf("%w: %s %v: %s", ErrInvalidOptions, field, v, want)
	}
	switch {
	case o.SegmentBytes < 1 || o.SegmentBytes > math.MaxInt32:
		return bad("SegmentBytes", o.SegmentBytes, fmt.Sprintf("must be between 1 and %d", math.MaxInt32))
	case o.SegmentAge < 0:
		return bad("SegmentAge", o.SegmentAge, "must not be negative")
	case o.IndexIntervalBytes < 0:
		return bad("IndexIntervalBytes", o.IndexIntervalBytes, "must not be negative")
	case o.Flush != FlushAlways && o.Flush != FlushInterval:
		return bad("Flush", o.Flush, "must be FlushAlways or FlushInterval")
	case o.FlushInterval < 0:
		return bad("FlushInterval", o.FlushInterval, "must not be negative")
	case o.MaxBatchBytes < BatchHeaderSize || o.MaxBatchBytes > math.MaxInt32:
		return bad("MaxBatchBytes", o.MaxBatchBytes, fmt.Sprintf("must be between %d and %d", BatchHeaderSize, math.MaxInt32))
	}
	return nil
}
