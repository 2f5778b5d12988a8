package broker

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/factorywire/factorywire/storage/commitlog"
)

// Codecs of the test batches: the attributes' codec, plus snappy framed as
// the Java client frames it.
const (
	codecNone         = 0
	codecGzip         = 1
	codecSnappy       = 2
	codecLz4          = 3
	codecZstd         = 4
	codecSnappyXerial = 0x102 // attributes codec 2, xerial framing
)

var testCodecs = []struct {
	name  string
	codec int
}{
	{"none", codecNone}, {"gzip", codecGzip}, {"snappy", codecSnappy},
	{"snappy-xerial", codecSnappyXerial}, {"lz4", codecLz4}, {"zstd", codecZstd},
}

// testRecord is one DefaultRecord for appendRecord.
type testRecord struct {
	tsDelta     int64
	offsetDelta int32
	key, value  []byte // nil: null
	headers     [][2][]byte
}

// appendRecord appends r encoded as Kafka's DefaultRecord.
func appendRecord(dst []byte, r testRecord) []byte {
	var body []byte
	body = append(body, 0)
	body = binary.AppendVarint(body, r.tsDelta)
	body = binary.AppendVarint(body, int64(r.offsetDelta))
	body = appendNullable(body, r.key)
	body = appendNullable(body, r.value)
	body = binary.AppendVarint(body, int64(len(r.headers)))
	for _, h := range r.headers {
		body = appendNullable(body, h[0])
		body = appendNullable(body, h[1])
	}
	dst = binary.AppendVarint(dst, int64(len(body)))
	return append(dst, body...)
}

func appendNullable(dst, b []byte) []byte {
	if b == nil {
		return binary.AppendVarint(dst, -1)
	}
	return append(binary.AppendVarint(dst, int64(len(b))), b...)
}

// appendRaw appends a record whose body is given as is, behind its length.
func appendRaw(dst []byte, body ...byte) []byte {
	return append(binary.AppendVarint(dst, int64(len(body))), body...)
}

// goodRecords returns n well-formed records: keys, a null value, headers,
// timestamps going back and forth.
func goodRecords(n int, value []byte) []byte {
	var recs []byte
	for i := range n {
		r := testRecord{tsDelta: int64(i % 3), offsetDelta: int32(i), key: fmt.Appendf(nil, "device-%d", i), value: value}
		if i%4 == 1 {
			r.value = nil
			r.headers = [][2][]byte{{[]byte("content-type"), []byte("application/json")}, {[]byte("k"), nil}}
		}
		recs = appendRecord(recs, r)
	}
	return recs
}

// compress compresses records with codec as the clients do.
func compress(t testing.TB, codec int, records []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch codec {
	case codecNone:
		return records
	case codecGzip:
		w := gzip.NewWriter(&buf)
		w.Write(records)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	case codecSnappy:
		return snappy.Encode(nil, records)
	case codecSnappyXerial:
		out := append([]byte{}, xerialHeader...)
		out = binary.BigEndian.AppendUint32(out, 1)
		out = binary.BigEndian.AppendUint32(out, 1)
		for len(records) > 0 {
			n := min(len(records), 32<<10)
			block := snappy.Encode(nil, records[:n])
			out = binary.BigEndian.AppendUint32(out, uint32(len(block)))
			out = append(out, block...)
			records = records[n:]
		}
		return out
	case codecLz4:
		w := lz4.NewWriter(&buf)
		w.Write(records)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	case codecZstd:
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
		if err != nil {
			t.Fatal(err)
		}
		defer enc.Close()
		return enc.EncodeAll(records, nil)
	default:
		t.Fatalf("codec %d", codec)
	}
	return buf.Bytes()
}

// batchSpec is a RecordBatch v2 header around a records section, for
// wrapBatch.
type batchSpec struct {
	codec           int // testCodecs; the attributes carry codec & 7
	numRecords      int32
	lastOffsetDelta int32
	baseTimestamp   int64
	maxTimestamp    int64
}

// wrapBatch puts the (already compressed) records section behind a header
// and a correct CRC, so that only the record check can refuse it.
func wrapBatch(s batchSpec, section []byte) []byte {
	b := make([]byte, 0, commitlog.BatchHeaderSize+len(section))
	b = binary.BigEndian.AppendUint64(b, 0)
	b = binary.BigEndian.AppendUint32(b, 0)
	b = binary.BigEndian.AppendUint32(b, 0xffffffff)
	b = append(b, 2)
	b = binary.BigEndian.AppendUint32(b, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(s.codec&7))
	b = binary.BigEndian.AppendUint32(b, uint32(s.lastOffsetDelta))
	b = binary.BigEndian.AppendUint64(b, uint64(s.baseTimestamp))
	b = binary.BigEndian.AppendUint64(b, uint64(s.maxTimestamp))
	b = binary.BigEndian.AppendUint64(b, math.MaxUint64) // producer id -1
	b = binary.BigEndian.AppendUint16(b, 0xffff)
	b = binary.BigEndian.AppendUint32(b, 0xffffffff)
	b = binary.BigEndian.AppendUint32(b, uint32(s.numRecords))
	b = append(b, section...)
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	binary.BigEndian.PutUint32(b[17:], crc32Checksum(b[21:]))
	return b
}

// recordsBatch builds a batch of n records (their section given
// uncompressed), compressed with codec, with consistent counts and
// timestamps base 1000, max 1002.
func recordsBatch(t testing.TB, codec int, n int32, records []byte) []byte {
	return wrapBatch(batchSpec{codec: codec, numRecords: n, lastOffsetDelta: n - 1, baseTimestamp: 1000, maxTimestamp: 1002}, compress(t, codec, records))
}

// verdict runs the produce path's checks on batch: the header's, then
// every record's.
func verdict(t testing.TB, batch []byte) recordsVerdict {
	t.Helper()
	h, err := commitlog.ParseBatch(batch)
	if err != nil {
		t.Fatalf("test batch header: %v", err)
	}
	return validateRecords(h, batch)
}

var (
	bombOnce  sync.Once
	bombBytes []byte // one byte more than maxDecompressedBatchBytes, zeros
)

func bomb() []byte {
	bombOnce.Do(func() { bombBytes = make([]byte, maxDecompressedBatchBytes+1) })
	return bombBytes
}

// malformedCase is a batch only the record check can refuse.
type malformedCase struct {
	name  string
	batch []byte
	code  int16
	msg   string // a part of the error message
}

// malformedBatches returns the malformed cases, each with a correct CRC and
// a consistent header.
func malformedBatches(t testing.TB, withBombs bool) []malformedCase {
	good := goodRecords(3, []byte("v"))
	one := appendRecord(nil, testRecord{value: []byte("x")})
	corruptCode := kerr.InvalidRecord.Code
	ts := func(base, maxTS int64, rec []byte) []byte {
		return wrapBatch(batchSpec{numRecords: 1, baseTimestamp: base, maxTimestamp: maxTS}, rec)
	}
	cases := []malformedCase{
		{"lying count 2^31", wrapBatch(batchSpec{numRecords: math.MaxInt32, lastOffsetDelta: math.MaxInt32 - 1, baseTimestamp: 1000, maxTimestamp: 1002}, good),
			corruptCode, "declares 2147483647 records (recordsCount) but holds 3"},
		{"fewer records than the count", recordsBatch(t, codecNone, 4, good), corruptCode, "declares 4 records"},
		{"record length past the end", recordsBatch(t, codecNone, 1, append(binary.AppendVarint(nil, 50), one[1:]...)), corruptCode, "record 0: length 50 runs past the end"},
		{"negative record length", recordsBatch(t, codecNone, 1, append(binary.AppendVarint(nil, -3), one[1:]...)), corruptCode, "record 0: length -3"},
		{"truncated varint", recordsBatch(t, codecNone, 1, appendRaw(nil, 0, 0x80)), corruptCode, "record 0: timestampDelta: varint runs past the end"},
		{"10-byte overflowing varlong", recordsBatch(t, codecNone, 1, appendRaw(nil, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0, 1, 1, 0)), corruptCode, "record 0: timestampDelta: varint overflows"},
		{"5-byte overflowing record length", recordsBatch(t, codecNone, 1, append([]byte{0xff, 0xff, 0xff, 0xff, 0x7f}, one[1:]...)), corruptCode, "record 0: length: varint overflows"},
		{"key length -2", recordsBatch(t, codecNone, 1, appendRaw(nil, 0, 0, 0, 3, 1, 0)), corruptCode, "record 0: key length -2 is below -1"},
		{"value length -5", recordsBatch(t, codecNone, 1, appendRaw(nil, 0, 0, 0, 1, 9, 0)), corruptCode, "record 0: value length -5 is below -1"},
		{"key past the record", recordsBatch(t, codecNone, 1, appendRaw(nil, 0, 0, 0, 20, 'k', 1, 0)), corruptCode, "record 0: key length 10 runs past the end of the record"},
		{"negative header key length", recordsBatch(t, codecNone, 1, appendRaw(nil, 0, 0, 0, 1, 1, 2, 1, 1)), corruptCode, "record 0: header 0 key length -1 is negative"},
		{"negative header count", recordsBatch(t, codecNone, 1, appendRaw(nil, 0, 0, 0, 1, 1, 1)), corruptCode, "record 0: headers count -1"},
		{"header count past the record", recordsBatch(t, codecNone, 1, appendRaw(nil, 0, 0, 0, 1, 1, 20, 0, 0)), corruptCode, "record 0: headers count 10"},
		{"offset deltas out of order", recordsBatch(t, codecNone, 3, appendRecord(appendRecord(appendRecord(nil, testRecord{offsetDelta: 0}), testRecord{offsetDelta: 2}), testRecord{offsetDelta: 1})),
			corruptCode, "record 1: offsetDelta 2, want 1"},
		{"offset delta not from 0", recordsBatch(t, codecNone, 1, appendRecord(nil, testRecord{offsetDelta: 5})), corruptCode, "record 0: offsetDelta 5, want 0"},
		{"bytes after the last header", recordsBatch(t, codecNone, 1, appendRaw(nil, 0, 0, 0, 1, 1, 0, 0xaa)), corruptCode, "record 0: 1 bytes after the last header"},
		{"empty record", recordsBatch(t, codecNone, 1, appendRaw(nil)), corruptCode, "record 0: attributes"},
		{"trailing bytes after the last record", recordsBatch(t, codecNone, 3, append(bytes.Clone(good), 0, 0)), corruptCode, "2 bytes after its last record"},
		{"timestamp overflow", ts(math.MaxInt64-1, math.MaxInt64, appendRecord(nil, testRecord{tsDelta: 5})), corruptCode, "overflows"},
		{"maxTimestamp below a record", ts(1000, 1004, appendRecord(nil, testRecord{tsDelta: 5})), corruptCode, "record 0: timestamp 1005 is after the batch's maxTimestamp 1004"},
		{"gzip garbage", wrapBatch(batchSpec{codec: codecGzip, numRecords: 3, lastOffsetDelta: 2}, []byte("this is not gzip at all")), corruptCode, "gzip record batch does not decompress"},
		{"gzip truncated", wrapBatch(batchSpec{codec: codecGzip, numRecords: 3, lastOffsetDelta: 2, baseTimestamp: 1000, maxTimestamp: 1002}, compress(t, codecGzip, good)[:30]), corruptCode, "gzip record batch does not decompress"},
		{"snappy garbage", wrapBatch(batchSpec{codec: codecSnappy, numRecords: 3, lastOffsetDelta: 2}, []byte{0x10, 0xff, 0xff, 0xff}), corruptCode, "snappy record batch does not decompress"},
		{"xerial block past the end", wrapBatch(batchSpec{codec: codecSnappy, numRecords: 3, lastOffsetDelta: 2}, append(compress(t, codecSnappyXerial, good)[:16], 0, 0, 1, 0, 1)), corruptCode, "xerial snappy: block length 256"},
		{"snappy length lie", wrapBatch(batchSpec{codec: codecSnappy, numRecords: 1}, append(binary.AppendUvarint(nil, 1<<20), 0, 0, 0, 0)), corruptCode, "more than snappy can encode"},
		{"lz4 garbage", wrapBatch(batchSpec{codec: codecLz4, numRecords: 3, lastOffsetDelta: 2}, []byte("this is not lz4 either")), corruptCode, "lz4 record batch does not decompress"},
		{"zstd garbage", wrapBatch(batchSpec{codec: codecZstd, numRecords: 3, lastOffsetDelta: 2}, []byte("nor is this zstd")), corruptCode, "zstd record batch does not decompress"},
		{"zstd with trailing garbage", wrapBatch(batchSpec{codec: codecZstd, numRecords: 3, lastOffsetDelta: 2, baseTimestamp: 1000, maxTimestamp: 1002}, append(compress(t, codecZstd, good), "junk"...)), corruptCode, "zstd record batch does not decompress"},
		{"lying count in a compressed batch", wrapBatch(batchSpec{codec: codecLz4, numRecords: math.MaxInt32, lastOffsetDelta: math.MaxInt32 - 1, baseTimestamp: 1000, maxTimestamp: 1002}, compress(t, codecLz4, good)),
			corruptCode, "declares 2147483647 records"},
		// A snappy block declaring 2^31 bytes: refused before anything
		// is allocated.
		{"snappy declared bomb", wrapBatch(batchSpec{codec: codecSnappy, numRecords: 1}, binary.AppendUvarint(nil, 1<<31-1)), kerr.MessageTooLarge.Code, "decompress to more than 100000000 bytes"},
	}
	if withBombs {
		for _, c := range []int{codecGzip, codecZstd, codecLz4, codecSnappyXerial} {
			z := compress(t, c, bomb())
			cases = append(cases, malformedCase{fmt.Sprintf("%s bomb (%d bytes)", testCodecName(c), len(z)),
				wrapBatch(batchSpec{codec: c, numRecords: 1}, z), kerr.MessageTooLarge.Code, "decompress to more than 100000000 bytes"})
		}
	}
	return cases
}

func testCodecName(codec int) string {
	for _, c := range testCodecs {
		if c.codec == codec {
			return c.name
		}
	}
	return "?"
}

// TestValidateRecords: well-formed batches of every codec pass; each
// malformed batch, though its CRC is right, is refused with a message that
// names the record and the field.
func TestValidateRecords(t *testing.T) {
	for _, c := range testCodecs {
		t.Run("valid "+c.name, func(t *testing.T) {
			for _, n := range []int32{1, 3, 100} {
				if v := verdict(t, recordsBatch(t, c.codec, n, goodRecords(int(n), bytes.Repeat([]byte("v"), 100)))); v.code != 0 {
					t.Fatalf("%d records: refused: %d %s", n, v.code, v.msg)
				}
			}
			// Large enough for several xerial blocks and lz4 blocks.
			if v := verdict(t, recordsBatch(t, c.codec, 2000, goodRecords(2000, bytes.Repeat([]byte("0123456789"), 50)))); v.code != 0 {
				t.Fatalf("2000 records: refused: %d %s", v.code, v.msg)
			}
		})
	}
	valid := []struct {
		name  string
		batch []byte
	}{
		{"maxTimestamp above every record", wrapBatch(batchSpec{numRecords: 1, baseTimestamp: 1000, maxTimestamp: 5000}, appendRecord(nil, testRecord{}))},
		{"negative timestamp delta", wrapBatch(batchSpec{numRecords: 2, lastOffsetDelta: 1, baseTimestamp: 1000, maxTimestamp: 1000},
			appendRecord(appendRecord(nil, testRecord{}), testRecord{tsDelta: -7, offsetDelta: 1}))},
		{"no timestamps (-1)", wrapBatch(batchSpec{numRecords: 1, baseTimestamp: -1, maxTimestamp: -1}, appendRecord(nil, testRecord{}))},
		{"null key, null value, empty header value", wrapBatch(batchSpec{numRecords: 1, baseTimestamp: 1, maxTimestamp: 1},
			appendRecord(nil, testRecord{headers: [][2][]byte{{[]byte{}, []byte{}}}}))},
	}
	for _, c := range valid {
		t.Run("valid "+c.name, func(t *testing.T) {
			if v := verdict(t, c.batch); v.code != 0 {
				t.Fatalf("refused: %d %s", v.code, v.msg)
			}
		})
	}
	for _, c := range malformedBatches(t, !testing.Short()) {
		t.Run(c.name, func(t *testing.T) {
			v := verdict(t, c.batch)
			if v.code != c.code || !strings.Contains(v.msg, c.msg) {
				t.Fatalf("got %d %q, want %d and a message containing %q", v.code, v.msg, c.code, c.msg)
			}
		})
	}
}

// TestProduceMalformedRecords: through a real broker, each malformed batch
// is answered with its error, is counted, and moves nothing; the next good
// batch lands where it should and franz-go consumes every good record.
func TestProduceMalformedRecords(t *testing.T) {
	b := startBroker(t, "")
	addr := b.Addr().String()
	const topic = "malformed"
	createTopic(t, addr, topic, 1, nil)
	adm := kadm.NewClient(newClient(t, addr))
	c := dialRaw(t, addr)

	produced := 0
	produceGood := func(codec int) {
		t.Helper()
		got := producePartition(c.roundTrip(produceReq(8, -1, topic, 0, recordsBatch(t, codec, 3, goodRecords(3, []byte("value"))))))
		if got.ErrorCode != 0 || got.BaseOffset != int64(produced) {
			t.Fatalf("good %s batch: error %d offset %d, want 0 and %d", testCodecName(codec), got.ErrorCode, got.BaseOffset, produced)
		}
		produced += 3
	}
	produceGood(codecNone)
	corrupt := 0
	for _, mc := range malformedBatches(t, false) {
		got := producePartition(c.roundTrip(produceReq(8, -1, topic, 0, mc.batch)))
		if got.ErrorCode != mc.code {
			t.Fatalf("%s: error %d (%v), want %d", mc.name, got.ErrorCode, kerr.ErrorForCode(got.ErrorCode), mc.code)
		}
		if got.ErrorMessage == nil || !strings.Contains(*got.ErrorMessage, mc.msg) {
			t.Fatalf("%s: error message %v, want one containing %q", mc.name, got.ErrorMessage, mc.msg)
		}
		if mc.code == kerr.InvalidRecord.Code {
			corrupt++
		}
		if end := endOffsets(t, adm, topic)[0]; end != int64(produced) {
			t.Fatalf("%s: log end offset %d after the refusal, want %d", mc.name, end, produced)
		}
	}
	if got := counterValue(t, b.metrics.malformedBatches.WithLabelValues(topic)); got != float64(corrupt) {
		t.Errorf("corrupt batches counted %v, want %d", got, corrupt)
	}
	if got := limitHits(t, b, limitDecompressedBatchBytes); got != 1 {
		t.Errorf("decompressed_batch_bytes hits %v, want 1 (the snappy declared bomb)", got)
	}
	for _, codec := range testCodecs {
		produceGood(codec.codec)
	}
	recs := consumeN(t, addr, topic, produced)
	for i, r := range recs {
		if r.Offset != int64(i) {
			t.Fatalf("record %d has offset %d", i, r.Offset)
		}
	}
}

// BenchmarkValidateRecords measures the record check of one batch of 100
// records of 100 B values (keys like the gateway's) per codec: ns/op is
// per batch.
func BenchmarkValidateRecords(b *testing.B) {
	value := bytes.Repeat([]byte(`{"v":1,"seq":12345,"fields":{"t":21.5}}`), 3)[:100]
	for _, c := range testCodecs {
		b.Run(c.name, func(b *testing.B) {
			batch := recordsBatch(b, c.codec, 100, goodRecords(100, value))
			h, err := commitlog.ParseBatch(batch)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(batch)))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if v := validateRecords(h, batch); v.code != 0 {
					b.Fatal(v.msg)
				}
			}
		})
	}
}
