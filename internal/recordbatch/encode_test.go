package recordbatch

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"math/rand/v2"
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

func BenchmarkEncode(b *testing.B) {
	recs := make([]Record, 200)
	value := bytes.Repeat([]byte("v"), 450)
	for i := range recs {
		recs[i] = Record{Key: []byte("press-000-001"), Value: value, Headers: []Header{{"content-type", []byte("application/json")}}, Timestamp: 1_764_550_000_000 + int64(i)}
	}
	b.ReportAllocs()
	for b.Loop() {
		Encode(recs)
	}
}
