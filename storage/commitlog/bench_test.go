package commitlog

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// BenchmarkAppendSync measures durable appends on the real file system:
// each operation appends a batch of 100 records of 100 bytes and waits for
// Sync, with 1 and 8 concurrent producers (group commit shares fsyncs among
// the 8). The reference case writes the same bytes to a plain file with an
// fsync after each write: the floor for one producer. Reported: records/s
// and fsyncs per append.
//
//	go test -run '^$' -bench AppendSync -benchtime 2s ./storage/commitlog/
func BenchmarkAppendSync(b *testing.B) {
	batch := makeBatch(100, 100, 1)
	b.Run("reference=file-write-fsync", func(b *testing.B) {
		f, err := os.Create(filepath.Join(b.TempDir(), "plain"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		b.SetBytes(int64(len(batch)))
		for b.Loop() {
			if _, err := f.Write(batch); err != nil {
				b.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(100*b.N)/b.Elapsed().Seconds(), "records/s")
	})
	for _, producers := range []int{1, 8} {
		b.Run(fmt.Sprintf("producers=%d", producers), func(b *testing.B) {
			cfs := &countingFS{FS: OSFS}
			l, err := Open(b.TempDir(), Options{FS: cfs})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			b.SetBytes(int64(len(batch)))
			before := cfs.logSyncs.Load()
			b.ResetTimer()
			var wg sync.WaitGroup
			for p := range producers {
				n := b.N / producers
				if p < b.N%producers {
					n++
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range n {
						base, err := l.Append(batch)
						if err == nil {
							err = l.Sync(base + 100)
						}
						if err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(100*b.N)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(cfs.logSyncs.Load()-before)/float64(b.N), "fsyncs/op")
		})
	}
}

// BenchmarkRead measures reads of 1 MiB from random offsets of a 64 MiB log
// (the page cache holds it), CRC verification included.
//
//	go test -run '^$' -bench Read ./storage/commitlog/
func BenchmarkRead(b *testing.B) {
	l, err := Open(b.TempDir(), Options{SegmentBytes: 16 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	batch := makeBatch(100, 100, 1)
	for l.Size() < 64<<20 {
		if _, err := l.Append(batch); err != nil {
			b.Fatal(err)
		}
	}
	end := l.EndOffset()
	var read int64
	i := int64(0)
	for b.Loop() {
		off := (i * 7919 * 100) % end
		i++
		data, err := l.Read(off, 1<<20, end)
		if err != nil {
			b.Fatal(err)
		}
		read += int64(len(data))
	}
	b.ReportMetric(float64(read)/b.Elapsed().Seconds()/(1<<20), "MiB/s")
}
