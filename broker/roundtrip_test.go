package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestRoundTripCodecs produces keyed records with every compression codec
// through an idempotent acks=all franz-go producer, and reads them back:
// same keys, values, headers and timestamps; offsets contiguous per
// partition; per-key order kept.
func TestRoundTripCodecs(t *testing.T) {
	b := startBroker(t, "")
	addr := b.Addr().String()
	codecs := []struct {
		name  string
		codec kgo.CompressionCodec
	}{
		{"none", kgo.NoCompression()},
		{"gzip", kgo.GzipCompression()},
		{"snappy", kgo.SnappyCompression()},
		{"lz4", kgo.Lz4Compression()},
		{"zstd", kgo.ZstdCompression()},
	}
	for _, c := range codecs {
		t.Run(c.name, func(t *testing.T) {
			topic := "codec-" + c.name
			const partitions, keys, perKey = 8, 40, 50
			createTopic(t, addr, topic, partitions, nil)
			p := newClient(t, addr, kgo.ProducerBatchCompression(c.codec), kgo.DefaultProduceTopic(topic))
			ctx := context.Background()
			base := time.UnixMilli(1_700_000_000_000)
			for i := 0; i < perKey; i++ {
				for k := 0; k < keys; k++ {
					r := &kgo.Record{
						Key:       []byte("device-" + strconv.Itoa(k)),
						Value:     bytes.Repeat([]byte(fmt.Sprintf("%d/%d;", k, i)), 1+k%7),
						Headers:   []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/json")}},
						Timestamp: base.Add(time.Duration(i) * time.Second),
					}
					p.Produce(ctx, r, func(r *kgo.Record, err error) {
						if err != nil {
							t.Errorf("produce: %v", err)
						}
					})
				}
			}
			if err := p.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			got := consumeN(t, addr, topic, keys*perKey)
			next := map[string]int{}
			nextOffset := map[int32]int64{}
			for _, r := range got {
				k, _ := strconv.Atoi(string(bytes.TrimPrefix(r.Key, []byte("device-"))))
				i := next[string(r.Key)]
				next[string(r.Key)]++
				want := bytes.Repeat([]byte(fmt.Sprintf("%d/%d;", k, i)), 1+k%7)
				if !bytes.Equal(r.Value, want) {
					t.Fatalf("key %s record %d: value %q, want %q", r.Key, i, r.Value, want)
				}
				if len(r.Headers) != 1 || r.Headers[0].Key != "content-type" {
					t.Fatalf("headers %v", r.Headers)
				}
				if !r.Timestamp.Equal(base.Add(time.Duration(i) * time.Second)) {
					t.Fatalf("timestamp %v, want %v", r.Timestamp, base.Add(time.Duration(i)*time.Second))
				}
				if r.Offset != nextOffset[r.Partition] {
					t.Fatalf("partition %d: offset %d, want %d", r.Partition, r.Offset, nextOffset[r.Partition])
				}
				nextOffset[r.Partition]++
			}
			if len(nextOffset) < 2 {
				t.Fatalf("records landed on %d partitions; keys should spread over %d", len(nextOffset), partitions)
			}
		})
	}
}

// TestLargeRecords sends records bigger than the consumer's fetch limits:
// the broker must still return them (at least one batch per fetch), and the
// topic's max.message.bytes must let them in.
func TestLargeRecords(t *testing.T) {
	b := startBroker(t, "")
	addr := b.Addr().String()
	createTopic(t, addr, "big", 2, map[string]*string{"max.message.bytes": ptr("4194304")})
	p := newClient(t, addr, kgo.DefaultProduceTopic("big"), kgo.ProducerBatchMaxBytes(4<<20), kgo.ProducerBatchCompression(kgo.NoCompression()))
	ctx := context.Background()
	const n = 6
	for i := 0; i < n; i++ {
		v := bytes.Repeat([]byte{byte('a' + i)}, 3<<20) // 3 MiB
		if err := p.ProduceSync(ctx, &kgo.Record{Key: []byte{byte(i)}, Value: v}).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
	}
	got := consumeN(t, addr, "big", n, kgo.FetchMaxBytes(1<<20), kgo.FetchMaxPartitionBytes(1<<20))
	for _, r := range got {
		if len(r.Value) != 3<<20 || r.Value[0] != 'a'+r.Key[0] || r.Value[len(r.Value)-1] != 'a'+r.Key[0] {
			t.Fatalf("record %d: %d bytes, wrong content", r.Key[0], len(r.Value))
		}
	}
	// Over the topic's limit (but within the client's): the broker
	// refuses it with MESSAGE_TOO_LARGE.
	p2 := newClient(t, addr, kgo.DefaultProduceTopic("big"), kgo.ProducerBatchMaxBytes(8<<20), kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.RecordRetries(1))
	err := p2.ProduceSync(ctx, &kgo.Record{Value: bytes.Repeat([]byte{1}, 5<<20)}).FirstErr()
	if !errors.Is(err, kerr.MessageTooLarge) {
		t.Fatalf("batch over max.message.bytes: err %v, want MESSAGE_TOO_LARGE", err)
	}
}

// TestFlushInterval runs the produce and consume path with flush "interval":
// records are acknowledged without waiting for an fsync and visible at once.
func TestFlushInterval(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir, func(c *Config) { c.Flush, c.FlushInterval = "interval", 50*time.Millisecond })
	addr := b.Addr().String()
	createTopic(t, addr, "lazy", 2, nil)
	p := newClient(t, addr, kgo.DefaultProduceTopic("lazy"))
	for i := 0; i < 500; i++ {
		p.Produce(context.Background(), &kgo.Record{Key: []byte{byte(i % 9)}, Value: []byte(strconv.Itoa(i))}, nil)
	}
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	consumeN(t, addr, "lazy", 500)
	// A clean stop fsyncs everything: a restart with flush "always"
	// serves the same records.
	b.Close()
	b2 := startBroker(t, dir)
	consumeN(t, b2.Addr().String(), "lazy", 500)
}
