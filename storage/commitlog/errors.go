package commitlog

import (
	"errors"
	"fmt"
)

// Errors returned by this package. Errors that carry detail wrap one of these,
// so callers match them with errors.Is; corruption found in a segment file is
// a *CorruptionError that wraps the sentinel naming what was wrong.
var (
	// ErrClosed is returned by the methods of a Log after Close or Delete.
	ErrClosed = errors.New("commitlog: log closed")

	// ErrFailed is wrapped by every error a Log returns after a write,
	// fsync or segment roll failed, until Log.Heal succeeds (or the
	// directory is opened again): the Log refuses appends and syncs
	// meanwhile.
	ErrFailed = errors.New("commitlog: log failed after an I/O error")

	// ErrOffsetOutOfRange is returned by Read when the offset is below
	// StartOffset or above EndOffset, or when retention deleted the
	// segment being read.
	ErrOffsetOutOfRange = errors.New("commitlog: offset out of range")

	// ErrBatchTooLarge is returned by Append for a batch larger than
	// Options.MaxBatchBytes.
	ErrBatchTooLarge = errors.New("commitlog: batch too large")

	// ErrBatchTooShort means a batch has fewer bytes than the 61-byte
	// RecordBatch v2 header.
	ErrBatchTooShort = errors.New("commitlog: batch too short")

	// ErrBatchLength means a batch's batchLength field does not match its
	// bytes: it declares less than a header, or a size other than the
	// bytes given, or runs past the end of its segment file.
	ErrBatchLength = errors.New("commitlog: bad batch length")

	// ErrMagic means a batch is not RecordBatch v2 (magic 2), the only
	// format the log stores.
	ErrMagic = errors.New("commitlog: unsupported batch magic")

	// ErrCRC means a batch's CRC32C does not match its bytes.
	ErrCRC = errors.New("commitlog: batch crc mismatch")

	// ErrRecordsCount means a batch's recordsCount is negative.
	ErrRecordsCount = errors.New("commitlog: negative records count")

	// ErrLastOffsetDelta means a batch's lastOffsetDelta is negative.
	ErrLastOffsetDelta = errors.New("commitlog: negative last offset delta")

	// ErrOffsetSequence means the batches of a segment are not
	// contiguous: a batch's base offset is not the previous batch's last
	// offset plus one, a segment's first batch is not at the offset its
	// file is named by, or a segment does not start where the previous
	// one ends.
	ErrOffsetSequence = errors.New("commitlog: batch offsets not contiguous")

	// ErrRecoveryPoint means that after an unclean shutdown the log ends
	// below its recovery point: data that had been fsynced is missing.
	ErrRecoveryPoint = errors.New("commitlog: log ends below its recovery point")

	// ErrInvalidOptions is wrapped by the errors of Open and SetOptions
	// for an Options field out of range; the message names the field and
	// its value.
	ErrInvalidOptions = errors.New("commitlog: invalid options")
)

// CorruptionError reports an invalid batch in a segment file: a header that
// does not parse, a CRC mismatch, or offsets out of sequence. Read and
// Batches return it for data they cannot serve; Open returns it when recovery
// finds an invalid batch that is not a torn tail (see the package
// documentation for the rule); Scrub reports it, and Repair quarantines the
// damaged range.
type CorruptionError struct {
	Segment string // path of the .log file
	Offset  int64  // byte position in the file of the invalid batch
	Err     error  // what is wrong; wraps a sentinel such as ErrCRC
}

// Error returns "commitlog: corrupt segment FILE at byte N: " and e.Err.
func (e *CorruptionError) Error() string {
	return fmt.Sprintf("commitlog: corrupt segment %s at byte %d: %v", e.Segment, e.Offset, e.Err)
}

// Unwrap returns e.Err.
func (e *CorruptionError) Unwrap() error { return e.Err }
