package broker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestCorruptSegmentIsReportedNotServed flips a byte inside a closed
// segment of one partition. Fetching the damaged batch answers
// KAFKA_STORAGE_ERROR (the consumer stops there instead of skipping data),
// fetching before it and from other partitions keeps working. The
// corruption is logged and counted once per segment, however often a
// consumer retries.
func TestCorruptSegmentIsReportedNotServed(t *testing.T) {
	dir := t.TempDir()
	var logs logSink
	b := startBroker(t, dir, func(c *Config) { c.Logger = logs.logger() })
	addr := b.Addr().String()
	createTopic(t, addr, "dmg", 2, map[string]*string{"segment.bytes": ptr("2048")})
	c := dialRaw(t, addr)
	for i := 0; i < 20; i++ {
		for p := int32(0); p < 2; p++ {
			got := producePartition(c.roundTrip(produceReq(7, -1, "dmg", p, makeBatch(testBatch{records: 2, timestamp: int64(i), value: make([]byte, 300)}))))
			if got.ErrorCode != 0 {
				t.Fatalf("produce: %d", got.ErrorCode)
			}
		}
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "dmg-0", "*.log"))
	if len(segs) < 3 {
		t.Fatalf("want several segments, have %v", segs)
	}
	// The second segment is closed; damage the last byte of its first
	// batch's records.
	victim := segs[1]
	raw, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	firstSize := 12 + int(beInt32(raw[8:]))
	raw[firstSize-1] ^= 0x5a
	if err := os.WriteFile(victim, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	victimBase := int64(0)
	fmtBase := strings.TrimSuffix(filepath.Base(victim), ".log")
	for _, ch := range fmtBase {
		victimBase = victimBase*10 + int64(ch-'0')
	}

	fetch := func(p int32, offset int64) kmsg.FetchResponseTopicPartition {
		req := kmsg.NewPtrFetchRequest()
		req.Version = 11
		req.MaxBytes = 1 << 20
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic = "dmg"
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = p, offset, 1<<20
		ft.Partitions = append(ft.Partitions, fp)
		req.Topics = append(req.Topics, ft)
		return c.roundTrip(req).(*kmsg.FetchResponse).Topics[0].Partitions[0]
	}
	for range 3 {
		if got := fetch(0, victimBase); got.ErrorCode != kerr.KafkaStorageError.Code {
			t.Fatalf("fetch of the damaged batch: error %d, want KAFKA_STORAGE_ERROR", got.ErrorCode)
		}
	}
	if got := logs.lines("corrupt segment", "topic=dmg", "partition=0", "file="+victim, "byte=0"); len(got) != 1 {
		t.Fatalf("%d log lines report the corrupt segment %s at byte 0, want 1:\n%s", len(got), victim, strings.Join(logs.lines("corrupt"), "\n"))
	}
	if got := counterValue(t, b.metrics.partitionErrors.WithLabelValues("dmg", "0", "corrupt")); got != 1 {
		t.Fatalf("partition_errors_total{dmg,0,corrupt} = %v, want 1", got)
	}
	if got := fetch(0, 0); got.ErrorCode != 0 || len(got.RecordBatches) == 0 {
		t.Fatalf("fetch before the damage: error %d, %d bytes", got.ErrorCode, len(got.RecordBatches))
	}
	if got := fetch(1, victimBase); got.ErrorCode != 0 || len(got.RecordBatches) == 0 {
		t.Fatalf("fetch of the other partition: error %d, %d bytes", got.ErrorCode, len(got.RecordBatches))
	}
}
