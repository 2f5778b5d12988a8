package devices_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/devices/simulator"
	"github.com/factorywire/factorywire/internal/recordbatch"
)

// TestSampleSizes measures what tags and units (schema version 2) cost on
// the wire: the record value of one sample of the demo's press class, and
// the records of a batch of 100 such samples (4 devices polled 25 times
// each, interleaved as one partition receives them) compressed with lz4
// and zstd as franz-go compresses a batch. It asserts no figure, only that
// each variant decodes; run it with -v to read them (docs/BENCHMARKS.md):
//
//	go test -count=1 -v -run TestSampleSizes ./devices/
func TestSampleSizes(t *testing.T) {
	classes, err := devices.LoadDir("../configs/devices")
	if err != nil {
		t.Fatal(err)
	}
	press := classes["press"]
	tags := map[string]string{"line": "line-1"} // what the demo gives each device
	variants := []struct {
		name        string
		tags, units map[string]string
	}{
		{"no tags, no units (as version 1)", nil, nil},
		{"units", nil, press.Units},
		{"units and the demo's line tag", tags, press.Units},
	}
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	const devs, polls = 4, 25
	t.Logf("press class: %d fields, %d with a unit", len(press.Fields), len(press.Units))
	t.Logf("%-34s %8s %10s %10s %10s", "variant", "one", "batch raw", "lz4", "zstd")
	var base [4]int
	for i, v := range variants {
		var recs []recordbatch.Record
		var one int
		for tick := range polls {
			for d := range devs {
				sim := simulator.Device{Class: press, Seed: uint64(d + 1)}
				s := devices.Sample{
					Factory: "plant-a", Device: fmt.Sprintf("press-%02d", d), Class: press.Name,
					Time: t0.Add(time.Duration(tick) * time.Second), Seq: uint64(1000 + tick),
					Tags: v.tags, Units: v.units,
					Fields: make(map[string]devices.Value, len(press.Fields)),
				}
				for _, f := range press.Fields {
					val, err := sim.Value(f.Name, int64(tick))
					if err != nil {
						t.Fatal(err)
					}
					s.Fields[f.Name] = val
				}
				value := s.AppendJSON(nil)
				if _, err := devices.DecodeSample(value); err != nil {
					t.Fatalf("%s: %v", v.name, err)
				}
				one = max(one, len(value))
				recs = append(recs, recordbatch.Record{
					Key: []byte(s.Device), Value: value, Timestamp: s.Time.UnixMilli(),
					Headers: []recordbatch.Header{{Key: "content-type", Value: []byte(devices.ContentType)}},
				})
			}
		}
		// A RecordBatch v2 has a 61-byte header; the codec compresses
		// the records after it.
		raw := recordbatch.Encode(recs)[61:]
		sizes := [4]int{one, len(raw), len(lz4Compress(t, raw)), len(zstdCompress(t, raw))}
		if i == 0 {
			base = sizes
		}
		t.Logf("%-34s %8s %10s %10s %10s", v.name, grow(sizes[0], base[0]), grow(sizes[1], base[1]), grow(sizes[2], base[2]), grow(sizes[3], base[3]))
	}
}

// grow prints n and how much more it is than base.
func grow(n, base int) string {
	if n == base {
		return fmt.Sprint(n)
	}
	return fmt.Sprintf("%d +%.1f%%", n, 100*float64(n-base)/float64(base))
}

// lz4Compress compresses as franz-go's lz4 codec does: one lz4 frame,
// default options.
func lz4Compress(t *testing.T, src []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := lz4.NewWriter(&buf)
	if _, err := w.Write(src); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// zstdCompress compresses as franz-go's zstd codec does: a 64 KiB window,
// the default level.
func zstdCompress(t *testing.T, src []byte) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil, zstd.WithWindowSize(64<<10), zstd.WithEncoderConcurrency(1), zstd.WithZeroFrames(true))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	return enc.EncodeAll(src, nil)
}
