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

// batchHeader is the length of a RecordBatch v2 header: base offset,
// batch length, partition leader epoch, magic, CRC, attributes, last
// offset delta, first and max timestamp, producer id and epoch, base
// sequence, record count.
const batchHeader = 8 + 4 + 4 + 1 + 4 + 2 + 4 + 8 + 8 + 8 + 2 + 4 + 4

// Encode encodes records, at least one, as one uncompressed RecordBatch v2.
// The batch's first timestamp is the smallest record timestamp and its max
// timestamp the largest. It writes the records in place after the header,
// in one buffer sized up front (the gateway spools every sample through
// here), as kmsg.Record and kmsg.RecordBatch would write them.
func Encode(records []Record) []byte {
	first, last := records[0].Timestamp, records[0].Timestamp
	size := batchHeader
	for _, r := range records {
		first, last = min(first, r.Timestamp), max(last, r.Timestamp)
		size += 5 + 1 + 10 + 5 + 5 + len(r.Key) + 5 + len(r.Value) + 5
		for _, h := range r.Headers {
			size += 5 + len(h.Key) + 5 + len(h.Value)
		}
	}
	b := make([]byte, batchHeader, size)
	for i, r := range records {
		b = appendRecord(b, r, r.Timestamp-first, int32(i))
	}
	h := b[:0]
	h = kbin.AppendInt64(h, 0)                     // base offset: the log assigns it
	h = kbin.AppendInt32(h, int32(len(b)-12))      // batch length: what follows it
	h = kbin.AppendInt32(h, -1)                    // partition leader epoch
	h = kbin.AppendInt8(h, 2)                      // magic
	h = kbin.AppendInt32(h, 0)                     // CRC, below
	h = kbin.AppendInt16(h, 0)                     // attributes: no compression, not transactional
	h = kbin.AppendInt32(h, int32(len(records)-1)) // last offset delta
	h = kbin.AppendInt64(h, first)                 // first timestamp
	h = kbin.AppendInt64(h, last)                  // max timestamp
	h = kbin.AppendInt64(h, -1)                    // producer id
	h = kbin.AppendInt16(h, -1)                    // producer epoch
	h = kbin.AppendInt32(h, -1)                    // base sequence
	_ = kbin.AppendArrayLen(h, len(records))       // record count
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], castagnoli))
	return b
}

// appendRecord appends r as a record of a batch: its length, then
// attributes (0), timestamp and offset deltas, key, value and headers, with
// a length of -1 for a nil key, value or header value.
func appendRecord(dst []byte, r Record, tsDelta int64, offsetDelta int32) []byte {
	n := 1 + kbin.VarlongLen(tsDelta) + kbin.VarintLen(offsetDelta) +
		bytesLen(r.Key) + bytesLen(r.Value) + kbin.VarintLen(int32(len(r.Headers)))
	for _, h := range r.Headers {
		n += kbin.VarintLen(int32(len(h.Key))) + len(h.Key) + bytesLen(h.Value)
	}
	dst = kbin.AppendVarint(dst, int32(n))
	dst = append(dst, 0)
	dst = kbin.AppendVarlong(dst, tsDelta)
	dst = kbin.AppendVarint(dst, offsetDelta)
	dst = kbin.AppendVarintBytes(dst, r.Key)
	dst = kbin.AppendVarintBytes(dst, r.Value)
	dst = kbin.AppendVarint(dst, int32(len(r.Headers)))
	for _, h := range r.Headers {
		dst = kbin.AppendVarintString(dst, h.Key)
		dst = kbin.AppendVarintBytes(dst, h.Value)
	}
	return dst
}

// bytesLen is the encoded length of b as varint-length-prefixed bytes.
func bytesLen(b []byte) int {
	if b == nil {
		return kbin.VarintLen(-1)
	}
	return kbin.VarintLen(int32(len(b))) + len(b)
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
	// The records' headers, one array for the batch (each record gets
	// its own part), and the last record's, whose keys the next record
	// shares when they are the same.
	all := make([]Header, 0, rb.NumRecords)
	var prev []Header
	for i := 0; i < int(rb.NumRecords); i++ {
		size, n := binary.Varint(src)
		if n <= 0 || size < 0 || int64(len(src)-n) < size {
			return fmt.Errorf("%w: record %d overruns the batch", ErrMalformed, i)
		}
		// What kmsg.Record.ReadFrom reads, with its checks, without
		// allocating per record its headers and their keys (when they
		// repeat the previous record's).
		b := kbin.Reader{Src: src[n : n+int(size)]}
		b.Int8() // attributes
		r := Record{Timestamp: rb.FirstTimestamp + b.Varlong()}
		b.Varint() // offset delta
		r.Key = b.VarintBytes()
		r.Value = b.VarintBytes()
		count := b.VarintArrayLen()
		if !b.Ok() {
			return fmt.Errorf("%w: record %d: %v", ErrMalformed, i, b.Complete())
		}
		start := len(all)
		for j := range int(max(count, 0)) {
			key, value := b.VarintBytes(), b.VarintBytes()
			h := Header{Value: value}
			if j < len(prev) && prev[j].Key == string(key) {
				h.Key = prev[j].Key
			} else {
				h.Key = string(key)
			}
			all = append(all, h)
		}
		if err := b.Complete(); err != nil {
			return fmt.Errorf("%w: record %d: %v", ErrMalformed, i, err)
		}
		if len(all) > start {
			r.Headers = all[start:len(all):len(all)]
			prev = r.Headers
		}
		src = src[n+int(size):]
		if err := fn(i, r); err != nil {
			return err
		}
	}
	if len(src) != 0 {
		return fmt.Errorf("%w: %d bytes after the last record", ErrMalformed, len(src))
	}
	return nil
}
