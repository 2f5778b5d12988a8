package broker

import (
	"sync"
	"sync/atomic"
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
	log         *commitlog.Log
	flushAlways bool
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
	message    string
}

// append checks the batch against its producer's sequence window, then
// appends it. A retried batch that was already written is answered with its
// original offset and not written again.
func (p *partition) append(batch []byte, h commitlog.BatchHeader) appendResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	if dup, code := p.producers.check(h); code != 0 {
		return appendResult{code: code}
	} else if dup >= 0 {
		return appendResult{baseOffset: dup, end: dup + int64(h.LastOffsetDelta) + 1}
	}
	base, err := p.log.Append(batch)
	if err != nil {
		return appendResult{code: storageErrorCode(err), message: err.Error()}
	}
	h.BaseOffset = base
	p.producers.record(h, time.Now().UnixMilli())
	return appendResult{baseOffset: base, end: h.LastOffset() + 1}
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
