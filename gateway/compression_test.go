package gateway

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/factorywire/factorywire/devices"
)

// BenchmarkZstdLevel compresses batches of samples' JSON as the producer
// does, with the gateway's compressor (zstdCompressor: the fastest level,
// lower-memory mode) and, as references, franz-go's compressor at the
// fastest and at zstd's default level, and reports the compression ratio
// of each: the price of the level in bytes sent.
//
//	go test -run '^$' -bench BenchmarkZstdLevel -benchmem ./gateway/
func BenchmarkZstdLevel(b *testing.B) {
	base := time.Date(2026, 12, 7, 4, 0, 0, 0, time.UTC)
	sample := func(dev, seq int) []byte {
		s := devices.Sample{Factory: "plant-a", Class: "press", Device: fmt.Sprintf("press-%04d", dev),
			Time: base.Add(time.Duration(seq) * time.Second), Seq: uint64(seq), Fields: map[string]devices.Value{}}
		for f := range 17 {
			s.Fields[fmt.Sprintf("field_%02d", f)] = devices.Float64Value(float64((dev*31+seq*7+f*13)%1000) / 10)
		}
		return s.AppendJSON(nil)
	}
	ours, err := newZstdCompressor()
	if err != nil {
		b.Fatal(err)
	}
	levels := []struct {
		name string
		c    kgo.Compressor
	}{{"gateway", ours}, {"fastest", defaultCompressor(b, codecs["zstd"])}, {"default", defaultCompressor(b, kgo.ZstdCompression())}}
	for _, n := range []int{5, 20, 100, 500} {
		var src []byte
		for i := range n {
			src = append(src, sample(i, 100+i%3)...)
		}
		for _, l := range levels {
			b.Run(fmt.Sprintf("records=%d/level=%s", n, l.name), func(b *testing.B) {
				c := l.c
				var dst bytes.Buffer
				var out []byte
				b.SetBytes(int64(len(src)))
				for b.Loop() {
					dst.Reset()
					out, _ = c.Compress(&dst, src)
				}
				b.ReportMetric(float64(len(src))/float64(len(out)), "ratio")
			})
		}
	}
}

// defaultCompressor is franz-go's compressor of codec.
func defaultCompressor(tb testing.TB, codec kgo.CompressionCodec) kgo.Compressor {
	tb.Helper()
	c, err := kgo.DefaultCompressor(codec)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// TestZstdCompressor: the gateway's zstd compressor writes frames zstd
// decodes to the batch, leaves a batch uncompressed for a broker that
// cannot take zstd, and its encoder takes at least 512 KiB less memory
// than franz-go's at the same level (whose history buffer is at least 1 MiB).
func TestZstdCompressor(t *testing.T) {
	// Larger than a zstd block (128 KiB), as the forwarder's batches are
	// when it catches up: a single block is encoded without the history
	// buffer.
	var src []byte
	for i := 0; len(src) < 300<<10; i++ {
		s := devices.Sample{Factory: "plant-a", Class: "press", Device: fmt.Sprintf("press-%04d", i%1000),
			Time: time.Date(2026, 12, 7, 16, 0, i%60, 0, time.UTC), Seq: uint64(i), Fields: map[string]devices.Value{}}
		for f := range 17 {
			s.Fields[fmt.Sprintf("field_%02d", f)] = devices.Float64Value(float64((i*31+f*13)%1000) / 10)
		}
		src = s.AppendJSON(src)
	}
	c, err := newZstdCompressor()
	if err != nil {
		t.Fatal(err)
	}
	var dst bytes.Buffer
	out, codec := c.Compress(&dst, src)
	if codec != kgo.CodecZstd || len(out) >= len(src) {
		t.Fatalf("Compress: codec %v, %d bytes of %d", codec, len(out), len(src))
	}
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	if got, err := dec.DecodeAll(out, nil); err != nil || !bytes.Equal(got, src) {
		t.Fatalf("DecodeAll: %d bytes, %v; want the %d bytes compressed", len(got), err, len(src))
	}
	dst.Reset()
	if out, codec := c.Compress(&dst, src, kgo.CompressDisableZstd); codec != kgo.CodecNone || !bytes.Equal(out, src) {
		t.Fatalf("Compress without zstd: codec %v, %d bytes; want the batch as it is", codec, len(out))
	}

	// A new compressor allocates its encoder for its first batch.
	firstBatch := func(newCompressor func() kgo.Compressor) int64 {
		var dst bytes.Buffer
		dst.Grow(2 * len(src)) // the output is not the encoder's
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		newCompressor().Compress(&dst, src)
		runtime.ReadMemStats(&after)
		return int64(after.TotalAlloc - before.TotalAlloc)
	}
	ours := firstBatch(func() kgo.Compressor {
		c, err := newZstdCompressor()
		if err != nil {
			t.Fatal(err)
		}
		return c
	})
	theirs := firstBatch(func() kgo.Compressor { return defaultCompressor(t, codecs["zstd"]) })
	// The history buffers alone: 1 MiB against 192 KiB.
	if theirs < 1<<20 || theirs-ours < 512<<10 {
		t.Fatalf("first batch allocated %d bytes, franz-go's compressor %d: want 512 KiB less or more", ours, theirs)
	}
	t.Logf("first batch allocated %d bytes, franz-go's compressor %d", ours, theirs)
}
