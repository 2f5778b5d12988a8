package broker

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/factorywire/factorywire/storage/commitlog"
)

// topic is one topic's catalog entry and its open partitions. The slice is
// replaced, never mutated, when partitions are added, so a reader holding the
// broker's read lock sees a consistent set.
type topic struct {
	meta       topicMeta
	partitions []*partition
}

// partition is one partition's log and the idempotent-producer state that
// guards appends to it.
type partition struct {
	topic       string
	index       int32
	dir         string
	log         *commitlog.Log // nil when offline
	flushAlways bool
	// offline is why the partition's log could not be opened (a corrupt
	// segment found by recovery): the partition serves nothing until
	// it is repaired and the broker restarted. Set once, before the
	// partition is published.
	offline error
	// faults logs and counts the partition's storage failures.
	faults *faultReporter
	// stats counts the topic's produced bytes and records.
	stats *topicStats
	// maxMessageBytes is the topic's max.message.bytes, updated when
	// the topic's configs change.
	maxMessageBytes atomic.Int64

	// mu serialises the producer-sequence check with the append it
	// guards, so two pipelined batches of one producer cannot both pass
	// the check and land out of order.
	mu             sync.Mutex
	producers      producerStates
	snapshotOffset int64 // log end offset of the last producer snapshot
}

// highWatermark is the offset below which consumers may read. With flush
// "always" it is the durable offset, so a consumer never sees a record that
// a machine crash could take back; with "interval" it is the log end.
func (p *partition) highWatermark() int64 {
	if p.flushAlways {
		return p.log.DurableOffset()
	}
	return p.log.EndOffset()
}

// appendResult is the outcome of appending one produce batch.
type appendResult struct {
	code       int16
	baseOffset int64
	end        int64 // offsets below end must be durable before the ack
	// truncations is the log's Truncations count at the append: if it
	// changed before the batch was synced, a heal may have removed it.
	truncations int64
	message     string
}

// append checks the batch against its producer's sequence window, then
// appends it. A retried batch that was already written is answered with its
// original offset and not written again. A failed log is healed first (see
// heal), so that producers' retries bring the partition back once the fault
// is gone.
func (p *partition) append(batch []byte, h commitlog.BatchHeader) appendResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.heal(); err != nil {
		p.faults.failed("heal", err)
		return appendResult{code: kerr.KafkaStorageError.Code, message: p.storageMessage(err)}
	}
	if dup, code := p.producers.check(h); code != 0 {
		return appendResult{code: code}
	} else if dup >= 0 {
		return appendResult{baseOffset: dup, end: dup + int64(h.LastOffsetDelta) + 1, truncations: p.log.Truncations()}
	}
	truncations := p.log.Truncations()
	base, err := p.log.Append(batch)
	if err != nil {
		code := storageErrorCode(err)
		if code == kerr.KafkaStorageError.Code {
			p.faults.failed("append", err)
			return appendResult{code: code, message: p.storageMessage(err)}
		}
		return appendResult{code: code, message: err.Error()}
	}
	h.BaseOffset = base
	p.producers.record(h, time.Now().UnixMilli())
	p.faults.appended()
	p.stats.appended(len(batch), h.NumRecords)
	return appendResult{baseOffset: base, end: h.LastOffset() + 1, truncations: truncations}
}

// heal brings a failed log back into service (commitlog.Log.Heal, which
// paces its own attempts). If healing removed batches written after the last
// successful fsync, the producer state that recorded them is rebuilt from
// the log, and the producer snapshot, which may describe them, is removed.
// The caller holds p.mu.
func (p *partition) heal() error {
	if !p.log.Failed() {
		return nil
	}
	res, err := p.log.Heal()
	if err != nil {
		return err
	}
	if res.To > res.From {
		if err := os.Remove(filepath.Join(p.dir, producerSnapshotFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove the producer snapshot after the log was truncated: %w", err)
		}
		producers, err := loadProducers(p.dir, p.log, time.Now())
		if err != nil {
			return fmt.Errorf("rebuild producer state after the log was truncated: %w", err)
		}
		p.producers, p.snapshotOffset = producers, -1
	}
	p.faults.healed(res)
	return nil
}

// synced checks, after the Sync that covers an appended batch returned,
// that no heal removed the batch in between.
func (p *partition) synced(res appendResult, syncErr error) error {
	if syncErr != nil {
		if storageErrorCode(syncErr) == kerr.KafkaStorageError.Code {
			p.faults.failed("fsync", syncErr)
		}
		return syncErr
	}
	if p.log.Truncations() != res.truncations {
		return fmt.Errorf("%w: the batch was written after the last successful fsync and removed when the log healed; retry it", commitlog.ErrFailed)
	}
	return nil
}

// storageMessage is the error message a producer gets for a storage
// failure: which partition, and why.
func (p *partition) storageMessage(err error) string {
	return fmt.Sprintf("partition %s-%d: storage failed (%s), retry later: %v", p.topic, p.index, faultCause(err), err)
}

// offlineMessage is the error message for requests to an offline partition.
func (p *partition) offlineMessage() string {
	return fmt.Sprintf("partition %s-%d is offline: %v; see `broker scrub` and `broker repair`", p.topic, p.index, p.offline)
}

// faultCause classifies a storage error for logs and metrics.
func faultCause(err error) string {
	var ce *commitlog.CorruptionError
	switch {
	case errors.As(err, &ce):
		return "corrupt"
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return "disk_full"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "too_many_open_files"
	case errors.Is(err, syscall.EIO):
		return "io_error"
	case errors.Is(err, commitlog.ErrFailed):
		return "failed"
	}
	return "other"
}

// faultReporter logs and counts one partition's storage failures: every
// failure is counted (factorywire_broker_partition_errors_total), the first
// of a run is logged at error level, and the heal that ends it at info
// level, so a full disk gives two log lines per partition, not one per
// produce.
type faultReporter struct {
	log     *slog.Logger
	m       *metrics
	topic   string
	index   string
	failing atomic.Bool

	mu          sync.Mutex
	corrupt     map[string]bool // segment files whose corruption was reported
	readLogged  time.Time       // last log line of a read failure that is not corruption
	readsFailed int             // read failures not logged since
}

func newFaultReporter(log *slog.Logger, m *metrics, topic string, index int32) *faultReporter {
	return &faultReporter{log: log, m: m, topic: topic, index: strconv.Itoa(int(index))}
}

// failed records a failure of op (append, fsync, read).
func (f *faultReporter) failed(op string, err error) {
	if f == nil {
		return // a partition built by a test without a broker
	}
	cause := faultCause(err)
	f.m.partitionErrors.WithLabelValues(f.topic, f.index, cause).Inc()
	if f.failing.CompareAndSwap(false, true) {
		f.log.Error("partition storage failed; its produces get KAFKA_STORAGE_ERROR until it heals",
			"topic", f.topic, "partition", f.index, "op", op, "cause", cause, "err", err)
	}
}

// healed records a heal: one that removed batches is logged at once.
func (f *faultReporter) healed(res commitlog.HealResult) {
	if f == nil {
		return // a partition built by a test without a broker
	}
	if res.To > res.From {
		f.log.Warn("partition healed; unacknowledged batches written after the last successful fsync were removed",
			"topic", f.topic, "partition", f.index, "from_offset", res.From, "to_offset", res.To)
	}
}

// appended records a successful append, which ends a run of failures.
func (f *faultReporter) appended() {
	if f == nil {
		return // a partition built by a test without a broker
	}
	if f.failing.Load() && f.failing.CompareAndSwap(true, false) {
		f.log.Info("partition healed; produces are accepted again", "topic", f.topic, "partition", f.index)
	}
}

// readFailed records a failed read of the log by a fetch or a list offsets.
// Corruption is reported once per segment file, when first read (a consumer
// that retries at the corrupt batch does not repeat it); other failures are
// logged at most once a minute. Every failure is counted.
func (f *faultReporter) readFailed(offset int64, err error) {
	if f == nil {
		return // a partition built by a test without a broker
	}
	cause := faultCause(err)
	var ce *commitlog.CorruptionError
	f.mu.Lock()
	if errors.As(err, &ce) {
		if f.corrupt == nil {
			f.corrupt = map[string]bool{}
		}
		first := !f.corrupt[ce.Segment]
		f.corrupt[ce.Segment] = true
		f.mu.Unlock()
		if first {
			f.m.partitionErrors.WithLabelValues(f.topic, f.index, cause).Inc()
			f.log.Error("corrupt segment: reads stop at its damaged batch; scrub and repair it",
				"topic", f.topic, "partition", f.index, "file", ce.Segment, "byte", ce.Offset, "offset", offset, "err", ce.Err)
		}
		return
	}
	now := time.Now()
	log := now.Sub(f.readLogged) >= time.Minute
	skipped := f.readsFailed
	if log {
		f.readLogged, f.readsFailed = now, 0
	} else {
		f.readsFailed++
	}
	f.mu.Unlock()
	f.m.partitionErrors.WithLabelValues(f.topic, f.index, cause).Inc()
	if log {
		f.log.Error("partition read failed", "topic", f.topic, "partition", f.index, "offset", offset,
			"cause", cause, "err", err, "failures_not_logged", skipped)
	}
}

// storageErrorCode maps a log error to the Kafka error code a client acts on.
func storageErrorCode(err error) int16 {
	switch {
	case err == nil:
		return 0
	case errorIs(err, commitlog.ErrClosed):
		// The topic was deleted while the request was in flight.
		return kerr.UnknownTopicOrPartition.Code
	case errorIs(err, commitlog.ErrOffsetOutOfRange):
		return kerr.OffsetOutOfRange.Code
	case errorIs(err, commitlog.ErrBatchTooLarge):
		return kerr.MessageTooLarge.Code
	}
	return kerr.KafkaStorageError.Code
}
