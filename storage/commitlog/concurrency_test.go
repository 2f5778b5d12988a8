package commitlog

import (
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
)

// TestConcurrentAppendSyncRead runs writers that append and sync, readers
// that read, look up timestamps and walk headers, and (in one variant)
// retention deleting segments under the readers. Run it with -race. It then
// checks that the offsets the writers got are contiguous and that every
// retained batch reads back as written.
func TestConcurrentAppendSyncRead(t *testing.T) {
	tests := []struct {
		name      string
		os        bool // real files, else memFS
		retain    bool
		perWriter int
	}{
		{"memfs", false, false, 200},
		{"memfs with retention", false, true, 200},
		{"os files with retention", true, true, 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			retain := tt.retain
			opts := Options{SegmentBytes: 4096, IndexIntervalBytes: 256, FS: newMemFS(), RetentionAge: -1}
			dir := "/log"
			if tt.os {
				opts.FS, dir = nil, t.TempDir()
			}
			if retain {
				opts.RetentionBytes = 16 << 10
			}
			l := openLog(t, dir, opts)
			const writers = 4
			perWriter := tt.perWriter
			var (
				mu      sync.Mutex
				written = map[int64][]byte{}
				done    atomic.Bool
				wg      sync.WaitGroup
				readers sync.WaitGroup
			)
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(w), 1))
					for i := range perWriter {
						b := makeBatch(1+rng.IntN(5), 1+rng.IntN(100), int64(w*1000+i))
						base, err := l.Append(b)
						if err != nil {
							t.Errorf("Append: %v", err)
							return
						}
						mu.Lock()
						written[base] = withBase(b, base)
						mu.Unlock()
						if rng.IntN(3) == 0 {
							if err := l.Sync(base + 1); err != nil {
								t.Errorf("Sync: %v", err)
								return
							}
							if d := l.DurableOffset(); d <= base {
								t.Errorf("DurableOffset %d after Sync(%d)", d, base+1)
							}
						}
					}
				}()
			}
			reader := func(seed uint64) {
				defer readers.Done()
				rng := rand.New(rand.NewPCG(seed, 2))
				for !done.Load() {
					start, end := l.StartOffset(), l.EndOffset()
					if end == start {
						continue
					}
					off := start + rng.Int64N(end-start)
					data, err := l.Read(off, 1+rng.IntN(8192), end)
					if errors.Is(err, ErrOffsetOutOfRange) && retain {
						continue // retention deleted the segment
					}
					if err != nil {
						t.Errorf("Read(%d): %v", off, err)
						return
					}
					hs := splitBatches(t, data)
					if len(hs) == 0 || hs[0].BaseOffset > off || hs[0].LastOffset() < off {
						t.Errorf("Read(%d) did not start with the batch containing it", off)
						return
					}
					for i := 1; i < len(hs); i++ {
						if hs[i].BaseOffset != hs[i-1].LastOffset()+1 {
							t.Errorf("Read(%d) returned non-contiguous batches", off)
							return
						}
					}
					if _, _, err := l.OffsetForTime(rng.Int64N(4000)); err != nil && !(retain && errors.Is(err, ErrOffsetOutOfRange)) {
						t.Errorf("OffsetForTime: %v", err)
						return
					}
					if err := l.Batches(off, func(BatchHeader) error { return nil }); err != nil && !(retain && errors.Is(err, ErrOffsetOutOfRange)) {
						t.Errorf("Batches: %v", err)
						return
					}
				}
			}
			for r := range 2 {
				readers.Add(1)
				go reader(uint64(r))
			}
			if retain {
				readers.Add(1)
				go func() {
					defer readers.Done()
					for !done.Load() {
						if _, err := l.Retain(); err != nil {
							t.Errorf("Retain: %v", err)
							return
						}
					}
				}()
			}
			wg.Wait()
			done.Store(true)
			readers.Wait()
			if t.Failed() {
				return
			}

			bases := slices.Sorted(func(yield func(int64) bool) {
				for b := range written {
					if !yield(b) {
						return
					}
				}
			})
			next := int64(0)
			for _, base := range bases {
				h, _ := ParseBatch(written[base])
				if base != next {
					t.Fatalf("offsets not contiguous: batch at %d, want %d", base, next)
				}
				next = h.LastOffset() + 1
			}
			if next != l.EndOffset() {
				t.Fatalf("EndOffset %d, want %d", l.EndOffset(), next)
			}
			want := map[int64][]byte{}
			for base, b := range written {
				if base >= l.StartOffset() {
					want[base] = b
				}
			}
			checkStored(t, l, want)
		})
	}
}

// TestGroupCommit checks that concurrent Append+Sync callers share fsyncs,
// and that appends go on while an fsync is in progress. The first fsync is
// held until every caller has appended, so the outcome does not depend on
// timing: that fsync covers some callers, the next one (started after all
// appends) covers all the others, so there are at most 2 fsyncs for n
// callers. If an fsync blocked appends, the test would deadlock.
func TestGroupCommit(t *testing.T) {
	const n = 16
	cfs := &countingFS{FS: newMemFS()}
	allAppended := make(chan struct{})
	cfs.beforeSync = func(string) { <-allAppended }
	l := openLog(t, "/log", Options{FS: cfs})
	before := cfs.logSyncs.Load()

	var appended, synced sync.WaitGroup
	appended.Add(n)
	synced.Add(n)
	go func() { appended.Wait(); close(allAppended) }()
	for range n {
		go func() {
			defer synced.Done()
			base, err := l.Append(makeBatch(2, 50, 1))
			appended.Done()
			if err != nil {
				t.Errorf("Append: %v", err)
				return
			}
			if err := l.Sync(base + 2); err != nil {
				t.Errorf("Sync: %v", err)
			}
		}()
	}
	synced.Wait()
	fsyncs := cfs.logSyncs.Load() - before
	t.Logf("%d Append+Sync callers, %d fsyncs", n, fsyncs)
	if fsyncs >= n || fsyncs > 2 {
		t.Fatalf("%d fsyncs for %d concurrent callers, want at most 2", fsyncs, n)
	}
	if l.DurableOffset() != l.EndOffset() || l.EndOffset() != 2*n {
		t.Fatalf("DurableOffset %d EndOffset %d, want both %d", l.DurableOffset(), l.EndOffset(), 2*n)
	}
}
