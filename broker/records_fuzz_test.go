package broker

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/factorywire/factorywire/storage/commitlog"
)

// FuzzValidateRecords feeds arbitrary bytes as the records section of a
// batch (with any codec, record count and timestamps) behind a header with
// a correct CRC, so that every input reaches the record decoder. It checks
// that validateRecords does not panic and, differentially against franz-go,
// that whatever it accepts a franz-go consumer decodes completely: exactly
// recordsCount records at offsets base..base+lastOffsetDelta, and the next
// fetch offset just after the batch.
// (When franz-go cannot decode a batch, validateRecords must have refused
// it.)
func FuzzValidateRecords(f *testing.F) {
	seed := func(batch []byte) {
		h, err := commitlog.ParseBatch(batch)
		if err != nil {
			f.Fatalf("seed: %v", err)
		}
		f.Add(uint8(h.Attributes&attrCompressionMask), h.NumRecords, h.BaseTimestamp, h.MaxTimestamp, batch[commitlog.BatchHeaderSize:])
	}
	for _, c := range testCodecs {
		for _, n := range []int32{1, 5} {
			seed(recordsBatch(f, c.codec, n, goodRecords(int(n), []byte("value"))))
		}
	}
	for _, mc := range malformedBatches(f, false) {
		seed(mc.batch)
	}
	dec := kgo.DefaultDecompressor()
	f.Fuzz(func(t *testing.T, codec uint8, numRecords int32, baseTimestamp, maxTimestamp int64, section []byte) {
		codec %= 5
		numRecords = max(numRecords, 1) // the header check refuses the rest
		batch := wrapBatch(batchSpec{codec: int(codec), numRecords: numRecords, lastOffsetDelta: numRecords - 1,
			baseTimestamp: baseTimestamp, maxTimestamp: maxTimestamp}, section)
		h, err := commitlog.ParseBatch(batch)
		if err != nil {
			t.Fatalf("fuzz batch header: %v", err)
		}
		v := validateRecords(h, batch)
		if v.code != 0 {
			if v.msg == "" {
				t.Fatalf("refused with code %d and no message", v.code)
			}
			return
		}

		// Accepted: franz-go must decode all of it, as a consumer
		// fetching it at base offset 1000 would.
		const base = 1000
		stored := bytes.Clone(batch)
		binary.BigEndian.PutUint64(stored, base)
		rp := kmsg.NewFetchResponseTopicPartition()
		rp.HighWatermark = base + int64(numRecords)
		rp.RecordBatches = stored
		fp, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{Offset: base, Topic: "fuzz"}, &rp, dec, nil)
		if fp.Err != nil {
			t.Fatalf("accepted, but franz-go fails: %v", fp.Err)
		}
		if len(fp.Records) != int(numRecords) {
			t.Fatalf("accepted %d records, franz-go decodes %d", numRecords, len(fp.Records))
		}
		for i, r := range fp.Records {
			if r.Offset != base+int64(i) {
				t.Fatalf("record %d: franz-go offset %d, want %d", i, r.Offset, base+int64(i))
			}
		}
		if want := base + int64(numRecords); next != want {
			t.Fatalf("franz-go next offset %d, want %d", next, want)
		}
	})
}
