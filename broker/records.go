package broker

// Record-level validation of produced batches: Produce decodes every record
// of a batch (after decompression) before the batch may be appended, so that
// no consumer is ever served a batch its record parser cannot walk.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/factorywire/factorywire/storage/commitlog"
)

// maxDecompressedBatchBytes bounds what the records of one produced batch
// may decompress to: 100,000,000 bytes, librdkafka's default
// receive.message.max.bytes, past which librdkafka consumers (kcat,
// confluent-kafka-*) already refuse to decompress a zstd batch. It bounds
// the memory and CPU time one batch can cost the broker: a batch that
// decompresses to more is refused with MESSAGE_TOO_LARGE (a Java producer
// then splits it) and counted as a hit of limitDecompressedBatchBytes.
const maxDecompressedBatchBytes = 100_000_000

// limitDecompressedBatchBytes names maxDecompressedBatchBytes in
// factorywire_broker_limit_hits_total.
const limitDecompressedBatchBytes = "decompressed_batch_bytes"

// zstdMaxWindow is the largest zstd window accepted: 2^27 bytes, what
// zstd-jni (Kafka's Java consumer) accepts by default and what level 22
// uses when the producer streams. The zstd decoder bounds its memory by it;
// the output is then held to maxDecompressedBatchBytes.
const zstdMaxWindow = 1 << 27

// pooledRecordsBufMax is the capacity past which a decompression buffer is
// dropped instead of pooled, so that one large batch does not pin its
// memory in the pool.
const pooledRecordsBufMax = 4 << 20

// Kafka's DefaultRecord, the records section of a RecordBatch v2 (after
// decompression), record after record; varints are zigzag, at most 5 bytes
// (varint) or 10 (varlong):
//
//	length          varint   bytes after this field
//	attributes      int8     unused
//	timestampDelta  varlong  record time = batch baseTimestamp + delta
//	offsetDelta     varint   record offset = batch baseOffset + delta
//	keyLength       varint   -1: null key
//	key             bytes
//	valueLength     varint   -1: null value
//	value           bytes
//	headersCount    varint
//	headers         per header: keyLength varint (>= 0), key, valueLength
//	                varint (-1: null), value
//
// validateRecords refuses (INVALID_RECORD, as Apache Kafka answers, naming
// the record and the field) what Kafka's DefaultRecord parser refuses: a varint that runs past
// the record or overflows, a length past the end of the record, a negative
// header count or header key length, a record that does not consume exactly
// its length, fewer records than recordsCount, bytes after the last record.
// It also refuses, stricter than Kafka, what only a broken or hostile
// producer sends and what this broker, storing batches as sent, could not
// repair as Kafka does:
//   - a key, value or header value length below -1 (Kafka reads any negative
//     length as null);
//   - record i with an offsetDelta other than i (Kafka stores an uncompressed
//     batch's deltas as sent and rewrites a compressed batch whose deltas are
//     not 0, 1, 2, ...; every client numbers them so);
//   - a record timestamp (baseTimestamp + timestampDelta) that overflows an
//     int64;
//   - a maxTimestamp below a record's timestamp (Kafka rewrites
//     maxTimestamp; here the time index and retention trust it, and a batch
//     whose maxTimestamp is below one of its records would be skipped by a
//     ListOffsets lookup of that record's time). A maxTimestamp above every
//     record is accepted, as some clients send one (kafka-go sends at least
//     0, older sarama rounded it up) and it costs no more than a record
//     with that time.
//
// Record attributes are not interpreted, as in Kafka.

// recordsVerdict is validateRecords' answer: code 0 when the records are
// well-formed.
type recordsVerdict struct {
	code     int16  // Kafka error code
	msg      string // what is wrong, naming the record index
	tooLarge bool   // the records decompress past maxDecompressedBatchBytes
}

// errDecompressedTooLarge is returned by decompressRecords when the output
// would pass maxDecompressedBatchBytes.
var errDecompressedTooLarge = errors.New("records decompress to more than 100000000 bytes (librdkafka's receive.message.max.bytes)")

// codecNames names the compression codecs of the attributes' low 3 bits.
var codecNames = [...]string{"none", "gzip", "snappy", "lz4", "zstd"}

// validateRecords decodes every record of batch, a whole RecordBatch v2
// whose header h ParseBatch has already checked (CRC, recordsCount =
// lastOffsetDelta + 1 >= 1, a codec from 0 to 4), and reports the first
// problem. It is safe for concurrent use; its buffers and decoders are
// pooled.
func validateRecords(h commitlog.BatchHeader, batch []byte) recordsVerdict {
	records := batch[commitlog.BatchHeaderSize:]
	codec := h.Attributes & attrCompressionMask
	if codec == 0 {
		return checkRecords(h, records)
	}
	bufp := recordsBufs.Get().(*[]byte)
	out, err := decompressRecords(codec, records, (*bufp)[:0])
	var v recordsVerdict
	switch {
	case errors.Is(err, errDecompressedTooLarge):
		v = recordsVerdict{code: kerr.MessageTooLarge.Code, msg: fmt.Sprintf("%s record batch: %v", codecNames[codec], err), tooLarge: true}
	case err != nil:
		v = recordsVerdict{code: kerr.InvalidRecord.Code, msg: fmt.Sprintf("%s record batch does not decompress: %v", codecNames[codec], err)}
	default:
		v = checkRecords(h, out)
	}
	if cap(out) <= pooledRecordsBufMax {
		*bufp = out[:0]
		recordsBufs.Put(bufp)
	}
	return v
}

// checkRecords decodes the (uncompressed) records section of the batch h
// heads.
func checkRecords(h commitlog.BatchHeader, data []byte) recordsVerdict {
	maxTS, maxAt := int64(math.MinInt64), 0
	pos := 0
	n := int(h.NumRecords)
	for i := 0; i < n; i++ {
		if pos == len(data) {
			return corrupt("record batch declares %d records (recordsCount) but holds %d", n, i)
		}
		length, used := varint(data[pos:])
		if used <= 0 {
			return corrupt("record %d: length: %s", i, varintProblem(used))
		}
		pos += used
		if length < 0 || int(length) > len(data)-pos {
			return corrupt("record %d: length %d runs past the end of the records (%d bytes left)", i, length, len(data)-pos)
		}
		rec := recordReader{b: data[pos : pos+int(length)]}
		pos += int(length)
		ts, problem := rec.check(h, i)
		if problem != "" {
			return corrupt("record %d: %s", i, problem)
		}
		if ts > maxTS {
			maxTS, maxAt = ts, i
		}
	}
	if pos != len(data) {
		return corrupt("record batch has %d bytes after its last record (recordsCount %d)", len(data)-pos, n)
	}
	if h.MaxTimestamp < maxTS {
		return corrupt("record %d: timestamp %d is after the batch's maxTimestamp %d", maxAt, maxTS, h.MaxTimestamp)
	}
	return recordsVerdict{}
}

func corrupt(format string, args ...any) recordsVerdict {
	return recordsVerdict{code: kerr.InvalidRecord.Code, msg: fmt.Sprintf(format, args...)}
}

// varintProblem says why kbin's varint decoders returned used <= 0.
func varintProblem(used int) string {
	if used == 0 {
		return "varint runs past the end of the record"
	}
	return "varint overflows"
}

// varint decodes a zig-zag varint as kbin.Varint does, with a fast path
// for the one-byte values most record fields hold.
func varint(b []byte) (int32, int) {
	if len(b) > 0 && b[0] < 0x80 {
		return int32(b[0]>>1) ^ -int32(b[0]&1), 1
	}
	return kbin.Varint(b)
}

// recordReader walks one record's body (after its length). The walk
// keeps to plain integers on the way; a problem is described only when one
// is found (bad), so that checking a valid record costs little.
type recordReader struct {
	b   []byte
	pos int
}

// uv decodes a zig-zag varint at r.pos, as kbin.Varint does, with a fast
// path for the one-byte values most record fields hold; ok is false when it
// runs past the record or overflows.
func (r *recordReader) uv() (v int32, ok bool) {
	if r.pos < len(r.b) {
		if c := r.b[r.pos]; c < 0x80 {
			r.pos++
			return int32(c>>1) ^ -int32(c&1), true
		}
	}
	v, used := kbin.Varint(r.b[r.pos:])
	if used <= 0 {
		return 0, false
	}
	r.pos += used
	return v, true
}

// check decodes the record at index i of the batch h heads and returns its
// timestamp, or a problem.
func (r *recordReader) check(h commitlog.BatchHeader, i int) (int64, string) {
	if len(r.b) == 0 {
		return 0, "attributes: the record is empty"
	}
	r.pos = 1 // attributes, unused
	var delta int64
	if r.pos < len(r.b) && r.b[r.pos] < 0x80 {
		c := r.b[r.pos]
		delta = int64(c>>1) ^ -int64(c&1)
		r.pos++
	} else {
		d, used := kbin.Varlong(r.b[r.pos:])
		if used <= 0 {
			return 0, "timestampDelta: " + varintProblem(used)
		}
		delta = d
		r.pos += used
	}
	ts := h.BaseTimestamp + delta
	if (delta > 0 && ts < h.BaseTimestamp) || (delta < 0 && ts > h.BaseTimestamp) {
		return 0, fmt.Sprintf("baseTimestamp %d + timestampDelta %d overflows", h.BaseTimestamp, delta)
	}
	od, ok := r.uv()
	if !ok || int(od) != i {
		return 0, r.describe(h, i)
	}
	for range 2 { // key, value: -1 is null
		l, ok := r.uv()
		if !ok || l < -1 || int(l) > len(r.b)-r.pos {
			return 0, r.describe(h, i)
		}
		r.pos += max(int(l), 0)
	}
	nh, ok := r.uv()
	// Each header takes at least two bytes (two lengths).
	if !ok || nh < 0 || int(nh) > (len(r.b)-r.pos)/2 {
		return 0, r.describe(h, i)
	}
	for range nh {
		kl, ok := r.uv()
		if !ok || kl < 0 || int(kl) > len(r.b)-r.pos {
			return 0, r.describe(h, i)
		}
		r.pos += int(kl)
		vl, ok := r.uv()
		if !ok || vl < -1 || int(vl) > len(r.b)-r.pos {
			return 0, r.describe(h, i)
		}
		r.pos += max(int(vl), 0)
	}
	if r.pos != len(r.b) {
		return 0, fmt.Sprintf("%d bytes after the last header (the record length counts %d)", len(r.b)-r.pos, len(r.b))
	}
	return ts, ""
}

// describe walks the record at index i again, slowly, to say what is wrong
// with it; check calls it once its fast walk failed.
func (r *recordReader) describe(h commitlog.BatchHeader, i int) string {
	d := describer{b: r.b, pos: 1}
	if _, used := kbin.Varlong(d.b[d.pos:]); used > 0 {
		d.pos += used
	}
	od, problem := d.varint()
	if problem != "" {
		return "offsetDelta: " + problem
	}
	if int(od) != i {
		return fmt.Sprintf("offsetDelta %d, want %d (record i has offset delta i)", od, i)
	}
	if problem := d.skip("key", -1, -1); problem != "" {
		return problem
	}
	if problem := d.skip("value", -1, -1); problem != "" {
		return problem
	}
	nh, problem := d.varint()
	if problem != "" {
		return "headers count: " + problem
	}
	if nh < 0 || int(nh) > (len(d.b)-d.pos)/2 {
		return fmt.Sprintf("headers count %d does not fit the %d bytes left in the record", nh, len(d.b)-d.pos)
	}
	for j := 0; j < int(nh); j++ {
		if problem := d.skip("key", j, 0); problem != "" {
			return problem
		}
		if problem := d.skip("value", j, -1); problem != "" {
			return problem
		}
	}
	return "malformed record"
}

// describer is the slow walk of a record that names what is wrong.
type describer struct {
	b   []byte
	pos int
}

func (r *describer) varint() (int32, string) {
	v, used := kbin.Varint(r.b[r.pos:])
	if used <= 0 {
		return 0, varintProblem(used)
	}
	r.pos += used
	return v, ""
}

// skip skips a length-prefixed field; minLen is -1 where null is allowed.
// The problem it returns is named by field and, for a header's key or
// value, the header's index (-1: not a header).
func (r *describer) skip(field string, header int, minLen int32) string {
	l, problem := r.varint()
	switch {
	case problem != "":
	case l < minLen && minLen == 0:
		problem = fmt.Sprintf("length %d is negative", l)
	case l < minLen:
		problem = fmt.Sprintf("length %d is below -1 (null)", l)
	case int(l) > len(r.b)-r.pos:
		problem = fmt.Sprintf("length %d runs past the end of the record (%d bytes left)", l, len(r.b)-r.pos)
	default:
		r.pos += max(int(l), 0)
		return ""
	}
	if header >= 0 {
		return fmt.Sprintf("header %d %s %s", header, field, problem)
	}
	return field + " " + problem
}

// recordsBufs pools decompression buffers (*[]byte).
var recordsBufs = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// gzipReader and lz4Reader are pooled with the bytes.Reader they read
// from, so a decompression allocates neither.
type gzipReader struct {
	src bytes.Reader
	r   gzip.Reader
}

type lz4Reader struct {
	src bytes.Reader
	r   *lz4.Reader
}

// zstdDecoder wraps a pooled zstd decoder so that a finalizer can close it
// when the pool drops it.
type zstdDecoder struct{ d *zstd.Decoder }

var (
	gzipReaders = sync.Pool{New: func() any { return new(gzipReader) }}
	lz4Readers  = sync.Pool{New: func() any { return &lz4Reader{r: lz4.NewReader(nil)} }}
	zstdDecs    = sync.Pool{New: func() any {
		// Concurrency 1: DecodeAll runs on the caller's goroutine and the
		// decoder starts none. The memory bound also bounds the window.
		d, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxMemory(zstdMaxWindow),
		)
		if err != nil {
			panic(fmt.Sprintf("broker: zstd decoder options: %v", err)) // constant options: a programming error
		}
		z := &zstdDecoder{d}
		runtime.SetFinalizer(z, func(z *zstdDecoder) { z.d.Close() })
		return z
	}}
)

// decompressRecords appends the decompressed records section src, of the
// given codec (1 to 4), to dst, bounded by maxDecompressedBatchBytes.
func decompressRecords(codec int16, src, dst []byte) ([]byte, error) {
	switch codec {
	case 1:
		g := gzipReaders.Get().(*gzipReader)
		defer gzipReaders.Put(g)
		g.src.Reset(src)
		if err := g.r.Reset(&g.src); err != nil {
			return dst, err
		}
		return readBounded(dst, &g.r)
	case 2:
		return decompressSnappy(src, dst)
	case 3:
		l := lz4Readers.Get().(*lz4Reader)
		defer lz4Readers.Put(l)
		l.src.Reset(src)
		l.r.Reset(&l.src)
		return readBounded(dst, l.r)
	case 4:
		// The decoder allocates a frame's declared content size up
		// front: check the first frame's claim first.
		var fh zstd.Header
		if fh.Decode(src) == nil && fh.HasFCS && fh.FrameContentSize > maxDecompressedBatchBytes {
			return dst, errDecompressedTooLarge
		}
		z := zstdDecs.Get().(*zstdDecoder)
		defer zstdDecs.Put(z)
		out, err := z.d.DecodeAll(src, dst)
		if errors.Is(err, zstd.ErrDecoderSizeExceeded) || len(out) > maxDecompressedBatchBytes {
			return dst, errDecompressedTooLarge
		}
		if err != nil {
			return dst, err
		}
		return out, nil
	}
	return dst, fmt.Errorf("unknown compression codec %d", codec)
}

// readBounded appends everything r yields to dst, refusing more than
// maxDecompressedBatchBytes.
func readBounded(dst []byte, r io.Reader) ([]byte, error) {
	const limit = maxDecompressedBatchBytes
	for {
		if len(dst) == cap(dst) {
			// Room for one byte past the limit, to see it passed.
			grow := min(max(cap(dst), 4<<10), limit+1-len(dst))
			dst = append(dst[:cap(dst)], make([]byte, grow)...)[:len(dst)]
		}
		n, err := r.Read(dst[len(dst):min(cap(dst), limit+1)])
		dst = dst[:len(dst)+n]
		if len(dst) > limit {
			return dst, errDecompressedTooLarge
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

// xerialHeader starts snappy as the Java client frames it (snappy-java's
// SnappyOutputStream): a magic, then a version and a minimum compatible
// version, then blocks, each a big endian int32 length and a raw snappy
// block.
var xerialHeader = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

// decompressSnappy decodes snappy as Kafka clients send it: xerial framed
// (the Java client, franz-go's streaming producer) or one raw snappy block
// (librdkafka, sarama, franz-go). It uses the strict snappy decoder, which
// refuses S2's extensions that Java's and librdkafka's decoders cannot
// read. Each block's declared length is checked before anything is
// allocated.
func decompressSnappy(src, dst []byte) ([]byte, error) {
	if len(src) <= 16 || !bytes.HasPrefix(src, xerialHeader) {
		return snappyBlock(src, dst)
	}
	for rest := src[16:]; len(rest) > 0; {
		if len(rest) < 4 {
			return dst, fmt.Errorf("xerial snappy: %d bytes left, a block length needs 4", len(rest))
		}
		size := int32(binary.BigEndian.Uint32(rest))
		rest = rest[4:]
		if size < 0 || int(size) > len(rest) {
			return dst, fmt.Errorf("xerial snappy: block length %d runs past the end (%d bytes left)", size, len(rest))
		}
		var err error
		if dst, err = snappyBlock(rest[:size], dst); err != nil {
			return dst, err
		}
		rest = rest[size:]
	}
	return dst, nil
}

// snappyBlock appends the decoded raw snappy block src to dst.
func snappyBlock(src, dst []byte) ([]byte, error) {
	l, err := snappy.DecodedLen(src)
	if err != nil {
		return dst, err
	}
	if l > maxDecompressedBatchBytes-len(dst) {
		return dst, errDecompressedTooLarge
	}
	// Snappy expands at most 64 bytes per 3 (a 3-byte copy of 64): a
	// larger claim is a lie, refused before it is allocated.
	if l > len(src)/3*64+64 {
		return dst, fmt.Errorf("snappy block of %d bytes declares %d decoded bytes, more than snappy can encode in it", len(src), l)
	}
	if cap(dst)-len(dst) < l {
		dst = append(dst[:cap(dst)], make([]byte, l-(cap(dst)-len(dst)))...)[:len(dst)]
	}
	out, err := snappy.DecodeStrict(dst[len(dst):len(dst)+l], src)
	if err != nil {
		return dst, err
	}
	if len(out) != l {
		return dst, fmt.Errorf("snappy block decodes to %d bytes, declares %d", len(out), l)
	}
	return dst[:len(dst)+l], nil
}
