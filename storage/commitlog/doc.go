// Package commitlog is the partition log of factorywire's Kafka-compatible
// broker, and of the gateway's local spool: an append-only sequence of Kafka
// RecordBatch v2 batches in segment files, with sparse offset and time
// indexes, CRC validation, group-commit fsync, recovery of a torn tail after
// a crash, and retention by age and size. It imports only the standard
// library.
//
// Batches are stored exactly as the producer sent them, except for the
// 8-byte base offset, which Append assigns. The CRC does not cover the base
// offset, so stored batches stay valid and Fetch serves the stored bytes as
// they are. The .log files have the layout of Kafka's segment files.
//
// # Usage
//
//	l, err := commitlog.Open("/var/lib/factorywire/plant-a.press-0", commitlog.Options{})
//	if err != nil {
//		return err
//	}
//	defer l.Close()
//
//	h, err := commitlog.ParseBatch(batch) // optional: Append validates too
//	base, err := l.Append(batch)          // offsets [base, base+h.LastOffsetDelta]
//	err = l.Sync(base + int64(h.LastOffsetDelta) + 1)
//	// The batch is durable: acknowledge it.
//
//	data, err := l.Read(offset, 1<<20, l.DurableOffset()) // whole batches, CRC-checked
//	n, err := l.Retain()                                   // from a periodic job
//
// # Files
//
// A log is one directory holding:
//
//	00000000000000000000.log        segment with base offset 0: batches back to back
//	00000000000000000000.index      its sparse offset index
//	00000000000000000000.timeindex  its sparse time index
//	00000000000000004711.log        the next segment, base offset 4711
//	00000000000000004711.index
//	00000000000000004711.timeindex
//	recovery-point                  offset below which segments are flushed and valid
//	clean-shutdown                  exists only while the log is closed cleanly
//	00000000000000000000.log.quarantine-8192  bytes Repair moved out of that segment
//
// A segment is named by its base offset, the offset of its first batch, in
// 20 decimal digits. The last segment is the active one, the only one that
// changes: Append rolls to a new segment when the batch would make the active
// one larger than Options.SegmentBytes or the active one is older than
// Options.SegmentAge. Open removes a leftover recovery-point.tmp and index
// files without a .log (left by a crash during retention); it ignores other
// files, among them Repair's quarantine files and its leftover *.repair-tmp
// files (see Repairing a corrupt log).
//
// # Segment file (.log)
//
// Batches back to back with no file header, as in Kafka. Each is a
// RecordBatch v2; integers are big endian:
//
//	byte  size  field
//	   0     8  baseOffset            assigned by Append; not covered by the CRC
//	   8     4  batchLength           bytes after this field: the batch is 12+batchLength bytes
//	  12     4  partitionLeaderEpoch  not covered by the CRC
//	  16     1  magic                 2
//	  17     4  crc                   CRC32C (Castagnoli) of bytes 21 to the end of the batch
//	  21     2  attributes
//	  23     4  lastOffsetDelta       the batch holds offsets baseOffset..baseOffset+lastOffsetDelta
//	  27     8  baseTimestamp         milliseconds since the Unix epoch
//	  35     8  maxTimestamp          milliseconds since the Unix epoch; -1 if none
//	  43     8  producerId
//	  51     2  producerEpoch
//	  53     4  baseSequence
//	  57     4  recordsCount
//	  61     …  records               never read by this package
//
// # Offset index (.index)
//
// Entries of 8 bytes, big endian:
//
//	byte  size  field
//	   0     4  relative offset  the batch's last offset minus the segment's base offset
//	   4     4  position         byte position of the batch in the .log file
//
// As in Kafka, an entry is added for a batch when at least
// Options.IndexIntervalBytes of log were written since the previous entry
// (or the segment's start; so the first batch has none). Both fields
// strictly increase. A lookup of offset o takes the last entry whose offset
// is at most o and scans batch headers from its position, at most about
// IndexIntervalBytes of them.
//
// # Time index (.timeindex)
//
// Entries of 12 bytes, big endian:
//
//	byte  size  field
//	   0     8  timestamp        the largest batch maxTimestamp in the segment so far
//	   8     4  relative offset  last offset of the first batch that reached it, minus the base offset
//
// As in Kafka, an entry is added together with each offset index entry if
// the segment's max timestamp grew since the last time entry, and once more
// when the segment is rolled or the log closed, so that the last entry of a
// closed segment holds the segment's max timestamp. Timestamps strictly
// increase; timestamps below 0 are never indexed. OffsetForTime(ts) skips
// segments whose max timestamp is below ts, takes the last entry whose
// timestamp is at most ts (no batch before its offset can have reached ts),
// and scans headers from there for the first batch with maxTimestamp >= ts.
//
// The active segment keeps its index entries in memory and writes them to
// its index files when it is rolled or the log closed; after a crash they
// are rebuilt from the log. Closed segments' index files are binary-searched
// with ReadAt, so memory does not grow with the retained log.
//
// # Open files
//
// The active segment keeps its three files open while the log is open. A
// closed segment's files are opened by the first read that needs them and
// closed again by a FileCache (Options.FileCache), which many logs share
// so that open files do not grow with logs × segments: it keeps at most
// FileCacheOptions.MaxSegments closed segments open (default 256, 3 files
// each), closing the least recently used one that no read is using when it
// needs room, and closes those not read for FileCacheOptions.Idle (default
// 1 minute). A rolled segment stays open in the cache if it has room, and
// is closed otherwise: only reads evict. A read holds the files it uses
// until it returns, so eviction,
// idle closing, retention and Close never close a file under a read; a
// deleted segment's files close when its last read returns. A read that
// cannot open a file (EMFILE: the process is out of handles) fails, or ends
// before that segment, without failing the log, and the next read tries
// again. Open opens a closed segment's files only while it checks or
// validates it, one segment at a time. A Log without Options.FileCache has
// its own, closed by Close. Sharing one:
//
//	files := commitlog.NewFileCache(commitlog.FileCacheOptions{MaxSegments: 256, Idle: time.Minute})
//	defer files.Close() // after closing the logs
//	l, err := commitlog.Open(dir, commitlog.Options{FileCache: files})
//
// # Recovery point
//
// The recovery-point file is 12 bytes, big endian:
//
//	byte  size  field
//	   0     8  offset  every batch below it is in a segment that was fsynced with its indexes
//	   8     4  crc     CRC32C of the offset
//
// It is written when a segment is rolled (after the old segment and its
// indexes are fsynced), by Close, and at the end of recovery: to
// recovery-point.tmp, fsynced, renamed over the old file, and the directory
// fsynced.
//
// # Clean-shutdown marker
//
// Close writes the empty clean-shutdown file after the final fsyncs and the
// recovery point. Open removes it, and fsyncs the directory, before it
// accepts appends, so the marker means that nothing was written since a
// clean Close.
//
// # Invariants
//
//   - In a segment, each batch's base offset is the previous batch's last
//     offset plus one, and the first batch's base offset is the segment's
//     base offset. Each segment starts at the offset where the previous one
//     ends.
//   - Only the active segment changes. A segment is fsynced, with its index
//     files, before the next one is created, so Sync only ever fsyncs the
//     active segment.
//   - A segment's offsets are within 2^32-1 of its base, and its size is at
//     most max(SegmentBytes, MaxBatchBytes) < 2^31, so index entries fit in
//     uint32.
//   - StartOffset is the first segment's base offset, EndOffset the offset
//     the next Append assigns, and every offset below DurableOffset has been
//     fsynced. Retention never deletes data at or above DurableOffset.
//
// # Recovery
//
// With the clean-shutdown marker, Open trusts the files. It checks each
// closed segment's index files (present, a whole number of entries, first
// and last entries in order and inside the segment, a time index that is
// not empty when the first batch has a timestamp) and rebuilds both from the
// batch headers if one fails. It loads the active segment's indexes, checks
// every entry, and walks the batch headers from the last offset index entry
// to the end of the file, which must end on a batch boundary; if anything
// fails, it validates the active segment as after a crash.
//
// Without the marker, Open validates every batch from the segment
// containing the recovery point to the end: length, magic, CRC32C, counts,
// and offset continuity. It rebuilds those segments' indexes, fsyncs them
// and the log files, and records EndOffset as the new recovery point. An
// invalid batch is a torn tail, and the active segment is truncated before
// it (logged at warn level with the file and position), only if it is in the
// last segment and
//
//   - fewer than 61 bytes remain before the end of the file, or
//   - its batchLength runs past the end of the file, unless the bytes to the
//     end of the file match its CRC (a whole batch whose length field is
//     damaged), or
//   - every byte after it is zero (after the end its batchLength declares,
//     or after its 61-byte header if that length is unusable), and its last
//     bytes were never written: its header is unusable (as a header of
//     zeros is), or it is all zeros from a 512-byte sector boundary to its
//     end. File systems write appended data in whole sectors and read what
//     never reached the disk as zeros.
//
// A complete last batch whose last sector was written but whose CRC or
// offset is wrong (or that has a sector of zeros in its middle) is damage,
// not a torn write: it was written whole and may have been acknowledged.
// (One case cannot be told apart: a damaged last batch whose bytes after its
// last sector boundary happen to be zeros is truncated as torn.) Like any other invalid batch, one followed by more
// data or one in a segment other than the last, it makes Open fail with a
// *CorruptionError naming the file and the byte position; recovery never
// skips or truncates it. So does a log that ends below its recovery point
// after recovery (ErrRecoveryPoint): data that had been fsynced is gone.
//
// # Repairing a corrupt log
//
// A *CorruptionError means the file changed after it was written: a failing
// disk or file system, or a tool. Read reports a corrupt batch in a closed
// segment with the file and byte position, and serves the valid batches
// before it; the rest of the log stays readable.
//
// Scrub verifies every batch of every segment without changing anything,
// and is safe while the log is open: it reports each damaged range, from an
// invalid batch to the next valid batch (the next position where a header
// parses, its CRC32C verifies and its offsets follow on from the last valid
// batch's), or to the end of the file. Repair, on a log that is not open,
// fixes them: for each damaged range it
//
//  1. copies the range's bytes, as they were, to a quarantine file beside
//     the segment, named SEGMENT.log.quarantine-POS, POS being the range's
//     byte position in the segment as it was (SEGMENT.log.quarantine-POS.2,
//     .3, ... if that name holds other bytes), and fsyncs it;
//  2. puts in the range's place a placeholder: an empty RecordBatch v2
//     covering exactly the offsets the range held (recordsCount 0,
//     lastOffsetDelta the number of lost offsets minus one, attributes 0,
//     producerId, producerEpoch and baseSequence -1, both timestamps the
//     maxTimestamp of the last valid batch before it, or -1, and its
//     partitionLeaderEpoch), so that offsets stay contiguous. ParseBatch,
//     Append and Read accept a batch of no records as any other; Kafka
//     keeps such batches after compaction, and consumers skip them and go
//     on from their last offset plus one. A range that held no offset
//     (bytes between two contiguous batches) gets no placeholder; a range
//     that ends the log (the last segment has nothing valid after it) is
//     truncated instead, and later appends take its offsets again;
//  3. writes the segment's new content to SEGMENT.log.repair-tmp, fsyncs
//     it, renames it over the segment and fsyncs the directory, then
//     removes the segment's index files.
//
// Before changing any segment Repair removes the clean-shutdown marker and
// lowers the recovery point to the first repaired segment's base offset,
// so that a crash at any step leaves a log that Open validates and that
// still holds every byte outside the damaged ranges; running Repair again
// finishes the job (it removes leftover *.repair-tmp files first). At the
// end it scrubs the log again and opens and closes it with Open, which
// rebuilds the indexes. On a healthy log Repair changes nothing. Repair
// does not touch a torn tail of the active segment: Open truncates it.
//
// Keep a copy of the directory before repairing. A quarantine file holds
// the raw bytes of its range, batches back to back as in the segment from
// its first invalid byte; Repair never removes it. To accept a shorter log
// after ErrRecoveryPoint, remove the recovery-point file.
//
// # Durability
//
// Append writes to the page cache and returns. Under FlushAlways (the
// default) a batch is durable once a Sync covering it returns: Sync fsyncs
// the active segment up to the EndOffset it saw when it started, and callers
// arriving during an fsync wait for it and return without another one if it
// covered them (group commit), so concurrent producers share fsyncs. Appends
// go on while an fsync runs. Under FlushInterval, the Log's goroutine calls
// Sync every Options.FlushInterval: a machine crash loses up to an interval
// of acknowledged data (a process crash loses nothing: Open makes what is in
// the page cache durable).
//
// # Faults
//
// After a failed write, fsync or segment roll (a full disk, too many open
// files, an I/O error) the Log refuses appends and syncs with an error
// wrapping ErrFailed, and Failed reports true. Heal brings it back once the
// cause is gone, without a restart: it truncates the partial bytes of a
// failed write; after a failed fsync or roll it truncates everything written
// to the active segment since the last successful fsync (the kernel may have
// dropped those pages, so they cannot be trusted; under FlushAlways none of
// them was acknowledged) and rebuilds the active segment's state from what
// is left; it removes the files a failed roll created; then it fsyncs the
// active segment. Attempts are spaced by a backoff (100ms doubling to 10s).
// A caller that acknowledges appends after Sync must check that Truncations
// did not change between its Append and the end of its Sync. Reopening the
// log also recovers it.
//
// # Retention
//
// Retain, run by the caller on a schedule, deletes whole closed segments
// from the oldest on: while a segment's newest batch maxTimestamp (or its
// file's modification time if no batch has a timestamp) is older than
// RetentionAge, or while the log without it is at least RetentionBytes. It
// rolls the active segment first when it is older than SegmentAge, or when
// all its data is past RetentionAge and durable, so that expired data does
// not stay in an active segment. A deleted segment's files are removed (the
// .log first) and the directory fsynced; StartOffset moves to the next
// segment's base.
//
// # Concurrency
//
// A Log has one writer at a time: Append, segment rolls, Retain and
// SetOptions are serialised by a mutex, and fsyncs by another, which an
// Append never waits for. Read, OffsetForTime, Batches and the offset
// accessors never block appends: they read an immutable snapshot of the
// segment list, published offsets and sizes, and the files with ReadAt. A
// FileCache has one mutex, held briefly by reads and rolls to take or give
// back a segment's files, never while a file is opened, read or closed. All
// methods are safe for concurrent use.
package commitlog
