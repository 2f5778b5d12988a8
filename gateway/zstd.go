package gateway

import (
	"bytes"
	"slices"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/twmb/franz-go/pkg/kgo"
)

// zstdOptions are franz-go's own for its zstd codec (a 64 KiB window, one
// goroutine, empty input as a frame) at the fastest level, in zstd's
// lower-memory mode: there an encoder's history buffer is its window and
// one block (192 KiB) instead of at least 1 MiB. franz-go pools one
// encoder per P; at 1,000 devices those buffers were 2 of the gateway's
// 5 MB of live heap (docs/BENCHMARKS.md).
var zstdOptions = []zstd.EOption{
	zstd.WithEncoderLevel(zstd.SpeedFastest),
	zstd.WithWindowSize(64 << 10),
	zstd.WithEncoderConcurrency(1),
	zstd.WithZeroFrames(true),
	zstd.WithLowerEncoderMem(true),
}

// zstdCompressor is the producer's compressor for kafka.compression zstd:
// franz-go's default compressor with zstdOptions. A produce request older
// than version 7 (a broker before Kafka 2.1) cannot carry zstd; its
// batches go uncompressed, as franz-go's compressor sends them when zstd is
// the only codec configured.
type zstdCompressor struct {
	pool sync.Pool // of *zstd.Encoder
}

func newZstdCompressor() (*zstdCompressor, error) {
	enc, err := zstd.NewWriter(nil, zstdOptions...)
	if err != nil {
		return nil, err
	}
	c := &zstdCompressor{}
	c.pool.New = func() any {
		enc, _ := zstd.NewWriter(nil, zstdOptions...) // the options were checked above
		return enc
	}
	c.pool.Put(enc)
	return c, nil
}

// Compress implements kgo.Compressor.
func (c *zstdCompressor) Compress(dst *bytes.Buffer, src []byte, flags ...kgo.CompressFlag) ([]byte, kgo.CompressionCodecType) {
	if slices.Contains(flags, kgo.CompressDisableZstd) {
		return src, kgo.CodecNone
	}
	enc := c.pool.Get().(*zstd.Encoder)
	defer c.pool.Put(enc)
	if n := enc.MaxEncodedSize(len(src)); n > dst.Cap() {
		dst.Grow(n)
	}
	return enc.EncodeAll(src, dst.Bytes()), kgo.CodecZstd
}
