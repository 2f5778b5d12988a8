package gateway

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/factorywire/factorywire/devices"
)

// BenchmarkZstdLevel compresses batches of samples' JSON, as the producer
// does (franz-go's compressor), with the gateway's zstd codec (its
// fastest level) and, as the reference, zstd's default level, and reports
// the compression ratio of each: the price of the level in bytes sent.
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
	levels := []struct {
		name  string
		codec kgo.CompressionCodec
	}{{"gateway", codecs["zstd"]}, {"default", kgo.ZstdCompression()}}
	for _, n := range []int{5, 20, 100, 500} {
		var src []byte
		for i := range n {
			src = append(src, sample(i, 100+i%3)...)
		}
		for _, l := range levels {
			b.Run(fmt.Sprintf("records=%d/level=%s", n, l.name), func(b *testing.B) {
				c, err := kgo.DefaultCompressor(l.codec)
				if err != nil {
					b.Fatal(err)
				}
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
