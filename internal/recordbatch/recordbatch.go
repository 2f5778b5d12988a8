// Package recordbatch encodes and decodes uncompressed Kafka RecordBatch v2
// batches for the logs factorywire writes and reads itself: the broker's
// committed-offset store and the gateway's spool. Batches a Kafka client
// produces never pass through here; the broker stores those as they come.
//
// Encode writes a batch with producer id -1 (not idempotent), no
// compression and base offset 0, with the batch length and CRC32C filled in,
// ready for commitlog.Log.Append, which assigns the base offset. Decode reads
// such a batch back, record by record, and refuses compressed, transactional
// or control batches and any record that does not fit its batch.
package recordbatch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Errors Decode returns, wrapped with where in the batch it found them.
var (
	// ErrCompressed: the batch is compressed; these logs never are.
	ErrCompressed = errors.New("recordbatch: compressed batch")
	// ErrMalformed: the bytes are not a whole RecordBatch v2.
	ErrMalformed = errors.New("recordbatch: malformed batch")
)

// Header is a record header.
type Header struct {
	Key   string
	Value []byte
}

// Record is one record of a batch. Timestamp is in milliseconds since the
// Unix epoch.
type Record struct {
	Key       []byte
	Value     []byte // nil is a null value (a tombstone)
	Headers   []Header
	Timestamp int64
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Encode encodes records, at least one, as one uncompressed RecordBatch v2.
// The batch's first timestamp is the smallest record timestamp and its max
// timestamp the largest.
func Encode(records []Record) []byte {
	first, last := records[0].Timestamp, records[0].Timestamp
	for _, r := range records[1:] {
		first, last = min(first, r.Timestamp), max(last, r.Timestamp)
	}
	var body []byte
	for i, r := range records {
		kr := kmsg.Record{
			TimestampDelta64: r.Timestamp - first,
			OffsetDelta:      int32(i),
			Key:              r.Key,
			Value:            r.Value,
		}
		for _, h := range r.Headers {
			kr.Headers = append(kr.Headers, kmsg.Header{Key: h.Key, Value: h.Value})
		}
		enc := kr.AppendTo(nil)[1:] // AppendTo leads with a zero length
		body = kbin.AppendVarint(body, int32(len(enc)))
		body = append(body, enc...)
	}
	rb := kmsg.RecordBatch{
		PartitionLeaderEpoch: -1,
		Magic:                2,
		LastOffsetDelta:      int32(len(records) - 1),
		FirstTimestamp:       first,
		MaxTimestamp:         last,
		ProducerID:           -1,
		ProducerEpoch:        -1,
		FirstSequence:        -1,
		NumRecords:           int32(len(records)),
		Records:              body,
	}
	b := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], castagnoli))
	return b
}

// Decode calls fn for each record of batch, in offset order, with the
// record's index in the batch. The record's byte slices alias batch. It
// does not check the CRC: commitlog.ParseBatch and Log.Read do.
func Decode(batch []byte, fn func(i int, r Record) error) error {
	var rb kmsg.RecordBatch
	if err := rb.ReadFrom(batch); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if rb.Magic != 2 {
		return fmt.Errorf("%w: magic %d", ErrMalformed, rb.Magic)
	}
	if rb.Attributes&0x0007 != 0 {
		return fmt.Errorf("%w (codec %d)", ErrCompressed, rb.Attributes&0x0007)
	}
	if rb.Attributes&0x0030 != 0 {
		return fmt.Errorf("%w: transactional or control batch", ErrMalformed)
	}
	if rb.NumRecords < 0 || int(rb.NumRecords) > len(rb.Records) {
		return fmt.Errorf("%w: %d records in %d bytes", ErrMalformed, rb.NumRecords, len(rb.Records))
	}
	src := rb.Records
	for i := 0; i < int(rb.NumRecords); i++ {
		size, n := binary.Varint(src)
		if n <= 0 || size < 0 || int64(len(src)-n) < size {
			return fmt.Errorf("%w: record %d overruns the batch", ErrMalformed, i)
		}
		var kr kmsg.Record
		if err := kr.ReadFrom(src[:n+int(size)]); err != nil {
			return fmt.Errorf("%w: record %d: %v", ErrMalformed, i, err)
		}
		src = src[n+int(size):]
		r := Record{Key: kr.Key, Value: kr.Value, Timestamp: rb.FirstTimestamp + kr.TimestampDelta64}
		for _, h := range kr.Headers {
			r.Headers = append(r.Headers, Header{Key: h.Key, Value: h.Value})
		}
		if err := fn(i, r); err != nil {
			return err
		}
	}
	if len(src) != 0 {
		return fmt.Errorf("%w: %d bytes after the last record", ErrMalformed, len(src))
	}
	return nil
}
