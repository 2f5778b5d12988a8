package commitlog

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

func TestParseBatch(t *testing.T) {
	valid := makeBatch(3, 20, 1700000000000)
	edit := func(f func(b []byte) []byte) []byte {
		b := append([]byte(nil), valid...)
		return f(b)
	}
	tests := []struct {
		name  string
		batch []byte
		want  error  // nil for a valid batch
		field string // what the message must name
	}{
		{"valid", valid, nil, ""},
		{"empty", nil, ErrBatchTooShort, "0 bytes"},
		{"shorter than header", valid[:BatchHeaderSize-1], ErrBatchTooShort, "60 bytes"},
		{"magic 1", edit(func(b []byte) []byte { b[magicPos] = 1; return b }), ErrMagic, "magic 1"},
		{"batchLength covers less than the header", edit(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[batchLengthPos:], 10)
			return b
		}), ErrBatchLength, "batchLength 10"},
		{"batchLength negative", edit(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[batchLengthPos:], 0xffffffff)
			return b
		}), ErrBatchLength, "batchLength -1"},
		{"batchLength longer than bytes", valid[:len(valid)-1], ErrBatchLength, "batchLength"},
		{"trailing bytes", append(append([]byte(nil), valid...), 0), ErrBatchLength, "declares a"},
		{"body byte flipped", edit(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), ErrCRC, "crc field"},
		{"crc field flipped", edit(func(b []byte) []byte { b[crcPos] ^= 1; return b }), ErrCRC, "crc field"},
		{"negative recordsCount", edit(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[recordsCountPos:], 0xfffffffe)
			reseal(b)
			return b
		}), ErrRecordsCount, "recordsCount -2"},
		{"negative lastOffsetDelta", edit(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[lastOffsetDeltaPos:], 0xffffffff)
			reseal(b)
			return b
		}), ErrLastOffsetDelta, "lastOffsetDelta -1"},
		{"base offset is not covered by the crc", edit(func(b []byte) []byte {
			binary.BigEndian.PutUint64(b, 12345)
			return b
		}), nil, ""},
		{"leader epoch is not covered by the crc", edit(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[leaderEpochPos:], 7)
			return b
		}), nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ParseBatch(tt.batch)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("ParseBatch: %v", err)
				}
				if h.Size() != len(tt.batch) || h.NumRecords != 3 || h.LastOffsetDelta != 2 {
					t.Fatalf("header %+v does not describe the batch", h)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseBatch error %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.field) || !strings.HasPrefix(err.Error(), "commitlog: ") {
				t.Fatalf("error %q does not start with commitlog: and name %q", err, tt.field)
			}
		})
	}
}

func TestBatchHeaderFields(t *testing.T) {
	b := makeBatch(4, 5, 1234)
	be := binary.BigEndian
	be.PutUint64(b, 100)
	be.PutUint32(b[leaderEpochPos:], 9)
	be.PutUint16(b[attributesPos:], 0x10)
	be.PutUint64(b[baseTimestampPos:], 1000)
	be.PutUint64(b[producerIDPos:], 77)
	be.PutUint16(b[producerEpochPos:], 3)
	be.PutUint32(b[baseSequencePos:], 40)
	reseal(b)
	h, err := ParseBatch(b)
	if err != nil {
		t.Fatal(err)
	}
	want := BatchHeader{
		BaseOffset: 100, Length: int32(len(b) - 12), PartitionLeaderEpoch: 9, Magic: 2,
		CRC: be.Uint32(b[crcPos:]), Attributes: 0x10, LastOffsetDelta: 3, BaseTimestamp: 1000,
		MaxTimestamp: 1234, ProducerID: 77, ProducerEpoch: 3, BaseSequence: 40, NumRecords: 4,
	}
	if h != want {
		t.Fatalf("header\n got %+v\nwant %+v", h, want)
	}
	if h.LastOffset() != 103 || h.Size() != len(b) {
		t.Fatalf("LastOffset %d Size %d, want 103 and %d", h.LastOffset(), h.Size(), len(b))
	}
}

// FuzzParseBatch checks that ParseBatch never panics and accepts only
// batches that are internally consistent.
func FuzzParseBatch(f *testing.F) {
	valid := makeBatch(2, 8, 99)
	f.Add(valid)
	f.Add(valid[:BatchHeaderSize])
	f.Add(valid[:len(valid)-3])
	flipped := append([]byte(nil), valid...)
	flipped[70] ^= 0x40
	f.Add(flipped)
	f.Add(make([]byte, BatchHeaderSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseBatch(b)
		if err != nil {
			return
		}
		if h.Size() != len(b) || h.Magic != 2 || h.NumRecords < 0 || h.LastOffsetDelta < 0 {
			t.Fatalf("ParseBatch accepted an inconsistent batch: %+v (%d bytes)", h, len(b))
		}
		if hh, err := parseHeader(b); err != nil || hh != h {
			t.Fatalf("parseHeader disagrees with ParseBatch: %+v, %v", hh, err)
		}
	})
}

// TestSplitBatches: whole batches back to back are split at their
// boundaries; a truncated, overlong or unparsable tail is an error, and
// fn's error stops the walk.
func TestSplitBatches(t *testing.T) {
	a, b := makeBatch(3, 4, 1), makeBatch(2, 4, 1)
	data := append(append([]byte(nil), a...), b...)
	var counts []int32
	err := SplitBatches(data, func(h BatchHeader, batch []byte) error {
		if len(batch) != h.Size() {
			t.Errorf("batch %d: %d bytes, header says %d", len(counts), len(batch), h.Size())
		}
		counts = append(counts, h.NumRecords)
		return nil
	})
	if err != nil || len(counts) != 2 || counts[0] != 3 || counts[1] != 2 {
		t.Fatalf("record counts %v, err %v; want [3 2]", counts, err)
	}
	for name, bad := range map[string][]byte{
		"trailing bytes": append(append([]byte(nil), a...), 1, 2, 3),
		"cut batch":      data[:len(data)-1],
		"bad magic":      append(append([]byte(nil), a[:16]...), append([]byte{9}, a[17:]...)...),
	} {
		if err := SplitBatches(bad, func(BatchHeader, []byte) error { return nil }); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	stop := errors.New("stop")
	n := 0
	if err := SplitBatches(data, func(BatchHeader, []byte) error { n++; return stop }); err != stop || n != 1 {
		t.Errorf("fn's error: %v after %d calls, want it after 1", err, n)
	}
}

func FuzzSplitBatches(f *testing.F) {
	f.Add(makeBatch(3, 4, 1))
	f.Add(append(makeBatch(1, 4, 1), 0, 0))
	f.Fuzz(func(t *testing.T, data []byte) {
		total := 0
		if err := SplitBatches(data, func(h BatchHeader, batch []byte) error {
			total += len(batch)
			return nil
		}); err == nil && total != len(data) {
			t.Fatalf("no error, but batches cover %d of %d bytes", total, len(data))
		}
	})
}
