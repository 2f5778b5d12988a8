package recordbatch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// encodeKmsg is Encode as it was written first, through kmsg.Record and
// kmsg.RecordBatch: the reference Encode's bytes must equal.
func encodeKmsg(records []Record) []byte {
	first, last := records[0].Timestamp, records[0].Timestamp
	for _, r := range records[1:] {
		first, last = min(first, r.Timestamp), max(last, r.Timestamp)
	}
	var body []byte
	for i, r := range records {
		kr := kmsg.Record{TimestampDelta64: r.Timestamp - first, OffsetDelta: int32(i), Key: r.Key, Value: r.Value}
		for _, h := range r.Headers {
			kr.Headers = append(kr.Headers, kmsg.Header{Key: h.Key, Value: h.Value})
		}
		enc := kr.AppendTo(nil)[1:] // AppendTo leads with a zero length
		body = kbin.AppendVarint(body, int32(len(enc)))
		body = append(body, enc...)
	}
	rb := kmsg.RecordBatch{
		PartitionLeaderEpoch: -1, Magic: 2, LastOffsetDelta: int32(len(records) - 1),
		FirstTimestamp: first, MaxTimestamp: last, ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1,
		NumRecords: int32(len(records)), Records: body,
	}
	b := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], castagnoli))
	return b
}

// TestEncodeAsKmsg compares Encode with encodeKmsg on batches of every
// shape: nil and empty keys, values and header values, large and small
// timestamps, many records, long values.
func TestEncodeAsKmsg(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	bytesOf := func() []byte {
		switch rng.IntN(4) {
		case 0:
			return nil
		case 1:
			return []byte{}
		case 2:
			return bytes.Repeat([]byte{byte(rng.IntN(256))}, rng.IntN(20))
		}
		return bytes.Repeat([]byte("x"), rng.IntN(70000))
	}
	for n := range 200 {
		recs := make([]Record, 1+rng.IntN(1+n))
		base := rng.Int64N(1 << 50)
		for i := range recs {
			recs[i] = Record{Key: bytesOf(), Value: bytesOf(), Timestamp: base + rng.Int64N(1<<uint(rng.IntN(40)+1))}
			for range rng.IntN(3) {
				recs[i].Headers = append(recs[i].Headers, Header{Key: string(bytesOf()), Value: bytesOf()})
			}
		}
		if got, want := Encode(recs), encodeKmsg(recs); !bytes.Equal(got, want) {
			t.Fatalf("batch %d (%d records): Encode and kmsg differ (%d and %d bytes)", n, len(recs), len(got), len(want))
		}
	}
}

// decodeKmsg is Decode's record loop as it was written first, through
// kmsg.Record: the reference Decode must agree with, records and errors.
func decodeKmsg(batch []byte) ([]Record, error) {
	var rb kmsg.RecordBatch
	if err := rb.ReadFrom(batch); err != nil {
		return nil, err
	}
	var out []Record
	src := rb.Records
	for range rb.NumRecords {
		size, n := binary.Varint(src)
		if n <= 0 || size < 0 || int64(len(src)-n) < size {
			return out, errors.New("overrun")
		}
		var kr kmsg.Record
		if err := kr.ReadFrom(src[:n+int(size)]); err != nil {
			return out, err
		}
		src = src[n+int(size):]
		r := Record{Key: kr.Key, Value: kr.Value, Timestamp: rb.FirstTimestamp + kr.TimestampDelta64}
		for _, h := range kr.Headers {
			r.Headers = append(r.Headers, Header{Key: h.Key, Value: h.Value})
		}
		out = append(out, r)
	}
	return out, nil
}

// TestDecodeAsKmsg compares Decode with decodeKmsg on valid batches and on
// batches with bytes flipped or cut (CRC not checked by either).
func TestDecodeAsKmsg(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for n := range 2000 {
		recs := make([]Record, 1+rng.IntN(5))
		for i := range recs {
			recs[i] = Record{Key: []byte("dev"), Value: []byte("value"), Timestamp: int64(i)}
			for range rng.IntN(3) {
				recs[i].Headers = append(recs[i].Headers, Header{Key: "content-type", Value: []byte("application/json")})
			}
		}
		batch := Encode(recs)
		switch n % 3 {
		case 1:
			batch[batchHeader+rng.IntN(len(batch)-batchHeader)] ^= byte(1 + rng.IntN(255))
		case 2:
			batch = batch[:batchHeader+rng.IntN(len(batch)-batchHeader)]
		}
		want, wantErr := decodeKmsg(batch)
		var got []Record
		err := Decode(batch, func(_ int, r Record) error { got = append(got, r); return nil })
		if wantErr != nil {
			if err == nil {
				t.Fatalf("batch %d: kmsg refuses it (%v), Decode does not", n, wantErr)
			}
			got = got[:min(len(got), len(want))]
		} else if err != nil && !strings.Contains(err.Error(), "after the last record") {
			t.Fatalf("batch %d: Decode refuses what kmsg reads: %v", n, err)
		}
		if len(got) != len(want) {
			t.Fatalf("batch %d: %d records, kmsg %d", n, len(got), len(want))
		}
		for i := range got {
			g, w := got[i], want[i]
			if !bytes.Equal(g.Key, w.Key) || (g.Key == nil) != (w.Key == nil) || !bytes.Equal(g.Value, w.Value) || (g.Value == nil) != (w.Value == nil) ||
				g.Timestamp != w.Timestamp || !slices.EqualFunc(g.Headers, w.Headers, func(a, b Header) bool { return a.Key == b.Key && bytes.Equal(a.Value, b.Value) }) {
				t.Fatalf("batch %d record %d: %+v, kmsg %+v", n, i, g, w)
			}
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	batch := Encode(benchRecords())
	b.ReportAllocs()
	for b.Loop() {
		Decode(batch, func(int, Record) error { return nil })
	}
}

func benchRecords() []Record {
	recs := make([]Record, 200)
	value := bytes.Repeat([]byte("v"), 450)
	for i := range recs {
		recs[i] = Record{Key: []byte("press-000-001"), Value: value, Headers: []Header{{"content-type", []byte("application/json")}}, Timestamp: 1_764_550_000_000 + int64(i)}
	}
	return recs
}

func BenchmarkEncode(b *testing.B) {
	recs := benchRecords()
	b.ReportAllocs()
	for b.Loop() {
		Encode(recs)
	}
}
