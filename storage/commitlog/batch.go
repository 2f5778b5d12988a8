package commitlog

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// BatchHeaderSize is the size in bytes of a RecordBatch v2 header, from the
// base offset through recordsCount.
const BatchHeaderSize = 61

// Positions of the RecordBatch v2 header fields (the table in doc.go).
const (
	batchLengthPos     = 8
	leaderEpochPos     = 12
	magicPos           = 16
	crcPos             = 17
	attributesPos      = 21 // the CRC covers the batch from here to its end
	lastOffsetDeltaPos = 23
	baseTimestampPos   = 27
	maxTimestampPos    = 35
	producerIDPos      = 43
	producerEpochPos   = 51
	baseSequencePos    = 53
	recordsCountPos    = 57

	// batchLengthOverhead is the bytes of a batch not counted by its
	// batchLength field: the base offset and batchLength itself.
	batchLengthOverhead = 12

	batchMagic = 2
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// BatchHeader is the decoded header of a Kafka RecordBatch v2. Field names
// follow the Kafka protocol documentation; all integers are big endian on the
// wire.
type BatchHeader struct {
	BaseOffset           int64  // offset of the first record; assigned by Append
	Length               int32  // batchLength: bytes after this field
	PartitionLeaderEpoch int32  // as sent by the producer; not interpreted
	Magic                int8   // always 2 in a valid batch
	CRC                  uint32 // CRC32C (Castagnoli) of the bytes from Attributes to the end
	Attributes           int16  // compression, timestamp type, transactional and control bits
	LastOffsetDelta      int32  // offset of the last record relative to BaseOffset
	BaseTimestamp        int64  // milliseconds since the Unix epoch
	MaxTimestamp         int64  // largest record timestamp, milliseconds since the Unix epoch
	ProducerID           int64  // -1 when the producer is not idempotent
	ProducerEpoch        int16  // -1 when the producer is not idempotent
	BaseSequence         int32  // sequence number of the first record, -1 if none
	NumRecords           int32  // recordsCount
}

// LastOffset returns the offset of the batch's last record:
// BaseOffset + LastOffsetDelta.
func (h BatchHeader) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// Size returns the size of the whole batch in bytes: 12 + Length.
func (h BatchHeader) Size() int { return batchLengthOverhead + int(h.Length) }

// ParseBatch validates that b is exactly one well-formed RecordBatch v2 and
// returns its header. It checks, in this order: len(b) >= BatchHeaderSize
// (ErrBatchTooShort), magic 2 (ErrMagic), 12+batchLength == len(b)
// (ErrBatchLength), the CRC32C (ErrCRC), recordsCount >= 0 (ErrRecordsCount)
// and lastOffsetDelta >= 0 (ErrLastOffsetDelta). The error names the field
// and its value. ParseBatch does not look inside the records.
func ParseBatch(b []byte) (BatchHeader, error) {
	if len(b) < BatchHeaderSize {
		return BatchHeader{}, fmt.Errorf("%w: %d bytes, a RecordBatch v2 header needs %d", ErrBatchTooShort, len(b), BatchHeaderSize)
	}
	h := decodeHeader(b)
	if err := h.checkFraming(); err != nil {
		return h, err
	}
	if h.Size() != len(b) {
		return h, fmt.Errorf("%w: batchLength %d declares a %d-byte batch, got %d bytes", ErrBatchLength, h.Length, h.Size(), len(b))
	}
	if crc := crc32.Checksum(b[attributesPos:], castagnoli); crc != h.CRC {
		return h, fmt.Errorf("%w: crc field 0x%08x, computed 0x%08x", ErrCRC, h.CRC, crc)
	}
	return h, h.checkCounts()
}

// parseHeader decodes the header at the start of b (at least BatchHeaderSize
// bytes) and checks what can be checked without the rest of the batch: magic,
// a batchLength that covers the header, and the counts.
func parseHeader(b []byte) (BatchHeader, error) {
	h := decodeHeader(b)
	if err := h.checkFraming(); err != nil {
		return h, err
	}
	return h, h.checkCounts()
}

// decodeHeader decodes the first BatchHeaderSize bytes of b without checking
// them.
func decodeHeader(b []byte) BatchHeader {
	be := binary.BigEndian
	return BatchHeader{
		BaseOffset:           int64(be.Uint64(b)),
		Length:               int32(be.Uint32(b[batchLengthPos:])),
		PartitionLeaderEpoch: int32(be.Uint32(b[leaderEpochPos:])),
		Magic:                int8(b[magicPos]),
		CRC:                  be.Uint32(b[crcPos:]),
		Attributes:           int16(be.Uint16(b[attributesPos:])),
		LastOffsetDelta:      int32(be.Uint32(b[lastOffsetDeltaPos:])),
		BaseTimestamp:        int64(be.Uint64(b[baseTimestampPos:])),
		MaxTimestamp:         int64(be.Uint64(b[maxTimestampPos:])),
		ProducerID:           int64(be.Uint64(b[producerIDPos:])),
		ProducerEpoch:        int16(be.Uint16(b[producerEpochPos:])),
		BaseSequence:         int32(be.Uint32(b[baseSequencePos:])),
		NumRecords:           int32(be.Uint32(b[recordsCountPos:])),
	}
}

// checkFraming checks the fields needed to find where the batch ends.
func (h BatchHeader) checkFraming() error {
	if h.Magic != batchMagic {
		return fmt.Errorf("%w: magic %d, want %d (only RecordBatch v2 is supported)", ErrMagic, h.Magic, batchMagic)
	}
	if h.Size() < BatchHeaderSize {
		return fmt.Errorf("%w: batchLength %d is less than the %d header bytes it must cover", ErrBatchLength, h.Length, BatchHeaderSize-batchLengthOverhead)
	}
	return nil
}

func (h BatchHeader) checkCounts() error {
	if h.NumRecords < 0 {
		return fmt.Errorf("%w: recordsCount %d", ErrRecordsCount, h.NumRecords)
	}
	if h.LastOffsetDelta < 0 {
		return fmt.Errorf("%w: lastOffsetDelta %d", ErrLastOffsetDelta, h.LastOffsetDelta)
	}
	return nil
}

// SplitBatches calls fn for each batch of data, as Read returns it: whole
// batches back to back, their CRCs already verified by Read, so
// SplitBatches checks only the framing (a truncated or overlong batch, a
// header that does not parse is an error naming it). An error from fn
// stops the walk and is returned as is.
func SplitBatches(data []byte, fn func(h BatchHeader, batch []byte) error) error {
	for len(data) > 0 {
		if len(data) < BatchHeaderSize {
			return fmt.Errorf("%w: %d trailing bytes after the last batch", ErrBatchTooShort, len(data))
		}
		h, err := parseHeader(data)
		if err != nil {
			return err
		}
		if h.Size() > len(data) {
			return fmt.Errorf("%w: batchLength %d declares a %d-byte batch, %d bytes left", ErrBatchLength, h.Length, h.Size(), len(data))
		}
		if err := fn(h, data[:h.Size()]); err != nil {
			return err
		}
		data = data[h.Size():]
	}
	return nil
}
