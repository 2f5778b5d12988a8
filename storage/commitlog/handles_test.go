package commitlog

import (
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// openFDs returns the number of files this process has open, from
// /proc/self/fd, or -1 where that does not exist (not Linux).
func openFDs(t testing.TB) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(entries)
}

// activeFiles is what the active segment of one log keeps open.
const activeFiles = 3

// manySegments appends batches to a log in dir until it has at least n
// segments, closes it, and returns what it holds by base offset. The log
// has its own FileCache, so that opts.FileCache counts only what the test
// does next.
func manySegments(t testing.TB, dir string, opts Options, n int) map[int64][]byte {
	t.Helper()
	opts.FileCache = nil
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[int64][]byte{}
	for len(l.SegmentBases()) < n {
		for base, b := range appendBatches(t, l, 20, int64(len(stored))) {
			stored[base] = b
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return stored
}

// TestFileCacheBoundsOpenFiles reads every segment of a log of about 60
// segments through a cache of 4, after a clean and after an unclean
// shutdown: every batch comes back, the cache never holds more than 4
// closed segments, and the process's open files (on Linux) never exceed
// those 4 segments' files plus the active segment's. Open leaves no closed
// segment open, and Close releases everything.
func TestFileCacheBoundsOpenFiles(t *testing.T) {
	for _, clean := range []bool{true, false} {
		name := "clean shutdown"
		if !clean {
			name = "unclean shutdown"
		}
		t.Run(name, func(t *testing.T) {
			const max = 4
			dir := t.TempDir()
			var evicted atomic.Int64
			c := NewFileCache(FileCacheOptions{MaxSegments: max, Idle: -1, OnEvict: func() { evicted.Add(1) }})
			defer c.Close()
			opts := Options{SegmentBytes: 1024, IndexIntervalBytes: 100, FileCache: c}
			want := manySegments(t, dir, opts, 60)
			if !clean {
				os.Remove(dir + "/" + cleanShutdownName)
			}
			openFDs(t) // the first open of a directory may start the poller
			base := openFDs(t)

			l := openLog(t, dir, opts)
			segs := len(l.SegmentBases())
			if st := c.Stats(); st.Segments != 0 || st.Active != 1 {
				t.Fatalf("after Open: %+v, want no closed segment open and 1 active", st)
			}
			if n := openFDs(t); base >= 0 && n > base+activeFiles {
				t.Fatalf("after Open of %d segments: %d files open, %d before", segs, n, base)
			}

			got := map[int64][]byte{}
			for off, end := l.StartOffset(), l.EndOffset(); off < end; {
				data, err := l.Read(off, 300, end)
				if err != nil {
					t.Fatalf("Read(%d): %v", off, err)
				}
				for _, h := range splitBatches(t, data) {
					got[off] = data[:h.Size()]
					data = data[h.Size():]
					off = h.LastOffset() + 1
				}
				st := c.Stats()
				if st.Segments > max || st.Files > max*3 {
					t.Fatalf("after Read(%d): %+v, want at most %d segments", off, st, max)
				}
				if n := openFDs(t); base >= 0 && n > base+max*3+activeFiles {
					t.Fatalf("after Read(%d): %d files open, at most %d allowed (%d before Open)", off, n, base+max*3+activeFiles, base)
				}
			}
			if len(got) != len(want) {
				t.Fatalf("read %d batches, want %d", len(got), len(want))
			}
			for b, data := range want {
				if string(got[b]) != string(data) {
					t.Fatalf("batch %d differs", b)
				}
			}
			st := c.Stats()
			if st.Opens < uint64(segs-1) || st.Evictions != st.Opens-uint64(st.Segments) || evicted.Load() != int64(st.Evictions) {
				t.Fatalf("%+v, OnEvict called %d times, over %d segments", st, evicted.Load(), segs)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if st := c.Stats(); st.Segments != 0 || st.Active != 0 || st.Files != 0 {
				t.Fatalf("after Close: %+v, want nothing open", st)
			}
			if n := openFDs(t); base >= 0 && n != base {
				t.Fatalf("after Close: %d files open, %d before Open", n, base)
			}
		})
	}
}

// TestFileCacheIdle checks that segments not read for Idle are closed, and
// open again on the next read.
func TestFileCacheIdle(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	c := NewFileCache(FileCacheOptions{MaxSegments: 100, Idle: time.Minute, Now: clock.Now})
	defer c.Close()
	dir := t.TempDir()
	opts := Options{SegmentBytes: 1024, IndexIntervalBytes: 100, FileCache: c}
	want := manySegments(t, dir, opts, 10)
	l := openLog(t, dir, opts)
	checkStored(t, l, want)
	closed := len(l.SegmentBases()) - 1
	if st := c.Stats(); st.Segments != closed {
		t.Fatalf("after reading everything: %+v, want %d segments open", st, closed)
	}
	clock.Advance(59 * time.Second)
	if n := c.CloseIdle(); n != 0 {
		t.Fatalf("CloseIdle before Idle closed %d segments", n)
	}
	if _, err := l.Read(l.StartOffset(), 1, l.EndOffset()); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	if n := c.CloseIdle(); n != closed-1 {
		t.Fatalf("CloseIdle after Idle closed %d segments, want %d (all but the one just read)", n, closed-1)
	}
	clock.Advance(time.Minute)
	if n := c.CloseIdle(); n != 1 {
		t.Fatalf("CloseIdle closed %d segments, want the last 1", n)
	}
	if st := c.Stats(); st.Segments != 0 || st.Files != 0 || st.IdleCloses != uint64(closed) || st.Evictions != 0 {
		t.Fatalf("%+v, want nothing open, %d idle closes and no eviction", st, closed)
	}
	checkStored(t, l, want)
}

// TestFileCacheIdleGoroutine checks that the cache's own goroutine closes
// idle segments, with the real clock.
func TestFileCacheIdleGoroutine(t *testing.T) {
	c := NewFileCache(FileCacheOptions{Idle: time.Millisecond})
	dir := t.TempDir()
	opts := Options{SegmentBytes: 1024, IndexIntervalBytes: 100, FileCache: c}
	want := manySegments(t, dir, opts, 5)
	l := openLog(t, dir, opts)
	checkStored(t, l, want)
	deadline := time.Now().Add(30 * time.Second)
	for c.Stats().Segments > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if st := c.Stats(); st.Segments != 0 || st.IdleCloses == 0 {
		t.Fatalf("%+v, want every idle segment closed by the goroutine", st)
	}
	l.Close()
	c.Close()
	c.Close() // idempotent
}

// TestRollDoesNotEvict checks that rolled segments take the cache's free
// room and are closed beyond it, without evicting: only reads do.
func TestRollDoesNotEvict(t *testing.T) {
	c := NewFileCache(FileCacheOptions{MaxSegments: 2, Idle: -1})
	defer c.Close()
	l := openLog(t, t.TempDir(), Options{SegmentBytes: 1024, IndexIntervalBytes: 100, FileCache: c})
	want := appendBatches(t, l, 200, 0)
	if n := len(l.SegmentBases()); n < 10 {
		t.Fatalf("%d segments, want at least 10", n)
	}
	if st := c.Stats(); st.Segments != 2 || st.Evictions != 0 || st.Active != 1 {
		t.Fatalf("after rolls: %+v, want the cache full (2 segments) without evictions", st)
	}
	checkStored(t, l, want)
	if st := c.Stats(); st.Segments != 2 || st.Evictions == 0 {
		t.Fatalf("after reads: %+v, want the cache full and evictions", st)
	}
}

// gateFS wraps an FS: reads of the file named by the gate block until the
// gate opens, and opens of files read-only fail with openErr while it is
// set.
type gateFS struct {
	FS
	mu      sync.Mutex
	gate    string        // path whose ReadAt blocks
	entered chan struct{} // closed when a read reaches the gate
	release chan struct{} // closed to let it through
	openErr error
}

func (g *gateFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	g.mu.Lock()
	err := g.openErr
	g.mu.Unlock()
	if err != nil && flag == os.O_RDONLY {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	f, err := g.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &gateFile{File: f, fs: g, name: name}, nil
}

type gateFile struct {
	File
	fs   *gateFS
	name string
}

func (f *gateFile) ReadAt(b []byte, off int64) (int, error) {
	g := f.fs
	g.mu.Lock()
	gated := g.gate == f.name
	if gated {
		g.gate = ""
	}
	g.mu.Unlock()
	if gated {
		close(g.entered)
		<-g.release
	}
	return f.File.ReadAt(b, off)
}

// TestReadDuringEviction holds a read of the oldest segment inside ReadAt
// while other reads evict it from a cache of one segment: the read still
// succeeds, and the segment's files close once it lets go.
func TestReadDuringEviction(t *testing.T) {
	c := NewFileCache(FileCacheOptions{MaxSegments: 1, Idle: -1})
	defer c.Close()
	gfs := &gateFS{FS: OSFS}
	dir := t.TempDir()
	opts := Options{SegmentBytes: 1024, IndexIntervalBytes: 100, FileCache: c, FS: gfs}
	want := manySegments(t, dir, opts, 6)
	l := openLog(t, dir, opts)
	bases := l.SegmentBases()

	gfs.mu.Lock()
	gfs.gate = (*l.segs.Load())[0].logPath
	gfs.entered, gfs.release = make(chan struct{}), make(chan struct{})
	gfs.mu.Unlock()
	type result struct {
		data []byte
		err  error
	}
	first := make(chan result, 1)
	go func() {
		data, err := l.Read(bases[0], 1<<20, bases[1])
		first <- result{data, err}
	}()
	<-gfs.entered
	for _, b := range bases[1 : len(bases)-1] {
		if _, err := l.Read(b, 1, b+1); err != nil {
			t.Fatalf("Read(%d): %v", b, err)
		}
	}
	// The held segment fills the cache: each other read's segment is
	// evicted when that read lets go.
	if st := c.Stats(); st.Segments != 1 || st.Evictions != uint64(len(bases)-2) {
		t.Fatalf("while the first read holds its segment: %+v, want only it open and %d evictions", st, len(bases)-2)
	}
	close(gfs.release)
	r := <-first
	if r.err != nil {
		t.Fatalf("the read held during evictions failed: %v", r.err)
	}
	n := 0
	for _, h := range splitBatches(t, r.data) {
		if string(r.data[:h.Size()]) != string(want[h.BaseOffset]) {
			t.Fatalf("batch %d differs", h.BaseOffset)
		}
		r.data = r.data[h.Size():]
		n++
	}
	if n == 0 {
		t.Fatal("the held read returned no batch")
	}
	if st := c.Stats(); st.Segments != 1 {
		t.Fatalf("after the held read let go: %+v, want 1 segment open", st)
	}
}

// TestOpenFailureFailsOneRead checks that a closed segment whose files
// cannot be opened (the process out of handles) fails the reads that need
// it, not the log, and that the next read opens it.
func TestOpenFailureFailsOneRead(t *testing.T) {
	c := NewFileCache(FileCacheOptions{MaxSegments: 2, Idle: -1})
	defer c.Close()
	gfs := &gateFS{FS: OSFS}
	dir := t.TempDir()
	opts := Options{SegmentBytes: 1024, IndexIntervalBytes: 100, FileCache: c, FS: gfs}
	want := manySegments(t, dir, opts, 4)
	l := openLog(t, dir, opts)
	gfs.mu.Lock()
	gfs.openErr = syscall.EMFILE
	gfs.mu.Unlock()
	_, err := l.Read(l.StartOffset(), 1<<20, l.EndOffset())
	if !errors.Is(err, syscall.EMFILE) || !strings.Contains(err.Error(), "open-file limit") {
		t.Fatalf("Read with no file handles left: %v, want EMFILE and how to fix it", err)
	}
	if _, _, err := l.OffsetForTime(0); !errors.Is(err, syscall.EMFILE) {
		t.Fatalf("OffsetForTime with no file handles left: %v, want EMFILE", err)
	}
	if err := l.Batches(0, func(BatchHeader) error { return nil }); !errors.Is(err, syscall.EMFILE) {
		t.Fatalf("Batches with no file handles left: %v, want EMFILE", err)
	}
	// The active segment's files are open: reads of it and appends work.
	if _, err := l.Read(l.ActiveSegmentBase(), 1<<20, l.EndOffset()); err != nil {
		t.Fatalf("Read of the active segment: %v", err)
	}
	if st := c.Stats(); st.OpenErrors != 3 || st.Segments != 0 {
		t.Fatalf("%+v, want 3 open errors and nothing cached", st)
	}
	b := makeBatch(1, 10, 5)
	base, err := l.Append(b)
	if err != nil {
		t.Fatalf("Append after failed reads: %v", err)
	}
	want[base] = withBase(b, base)
	gfs.mu.Lock()
	gfs.openErr = nil
	gfs.mu.Unlock()
	checkStored(t, l, want)
}

// TestFileCacheRetention deletes segments whose files are open and others
// whose files are closed, with reads holding some: the cache forgets them
// and the files close.
func TestFileCacheRetention(t *testing.T) {
	c := NewFileCache(FileCacheOptions{MaxSegments: 3, Idle: -1})
	defer c.Close()
	dir := t.TempDir()
	opts := Options{SegmentBytes: 1024, IndexIntervalBytes: 100, FileCache: c, RetentionAge: -1}
	manySegments(t, dir, opts, 12)
	openFDs(t)
	base := openFDs(t)
	l := openLog(t, dir, opts)
	bases := l.SegmentBases()
	// Open the files of segments 0 and 5 to 6, and hold 5's.
	for _, i := range []int{0, 5, 6} {
		if _, err := l.Read(bases[i], 1, bases[i]+1); err != nil {
			t.Fatal(err)
		}
	}
	held := (*l.segs.Load())[5]
	if _, err := l.acquire(held); err != nil {
		t.Fatal(err)
	}
	// The batches' timestamps are from 1970: a long SegmentAge keeps
	// Retain from rolling the active segment.
	if err := l.SetOptions(Options{SegmentBytes: 1024, SegmentAge: 1 << 62, RetentionAge: -1, RetentionBytes: 1}); err != nil {
		t.Fatal(err)
	}
	n, err := l.Retain()
	if err != nil || n != len(bases)-1 {
		t.Fatalf("Retain = %d, %v; want %d segments deleted", n, err, len(bases)-1)
	}
	if st := c.Stats(); st.Segments != 1 {
		t.Fatalf("after Retain: %+v, want only the held segment open", st)
	}
	if _, err := l.Read(bases[0], 1, l.EndOffset()); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("Read of a deleted segment: %v, want ErrOffsetOutOfRange", err)
	}
	l.release(held)
	if st := c.Stats(); st.Segments != 0 || st.Files != 0 {
		t.Fatalf("after the held read let go: %+v, want nothing open", st)
	}
	if n := openFDs(t); base >= 0 && n != base+activeFiles {
		t.Fatalf("%d files open, want %d: the active segment's", n, base+activeFiles)
	}
	if files := segmentFiles(t, dir); len(files) != 1 {
		t.Fatalf("%d segment files left, want 1", len(files))
	}
}

// TestFileCacheConcurrent runs appenders that sync (rolling often), readers
// and retention on two logs sharing a cache of 2 segments, under -race:
// reads succeed (or find the segment deleted), and closing the logs leaves
// nothing open.
func TestFileCacheConcurrent(t *testing.T) {
	c := NewFileCache(FileCacheOptions{MaxSegments: 2, Idle: time.Millisecond})
	defer c.Close()
	var logs []*Log
	for range 2 {
		logs = append(logs, openLog(t, t.TempDir(), Options{
			SegmentBytes: 1024, IndexIntervalBytes: 100, RetentionAge: -1, RetentionBytes: 8 << 10, FileCache: c}))
	}
	var done atomic.Bool
	var writers, others sync.WaitGroup
	for i, l := range logs {
		writers.Add(1)
		go func() {
			defer writers.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			for j := range 300 {
				base, err := l.Append(makeBatch(1+rng.IntN(3), 1+rng.IntN(100), int64(j)))
				if err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				if j%8 == 0 {
					if err := l.Sync(base + 1); err != nil {
						t.Errorf("Sync: %v", err)
						return
					}
				}
				if j%30 == 0 {
					if _, err := l.Retain(); err != nil {
						t.Errorf("Retain: %v", err)
						return
					}
				}
			}
		}()
		for r := range 2 {
			others.Add(1)
			go func() {
				defer others.Done()
				rng := rand.New(rand.NewPCG(uint64(i), uint64(r)+2))
				for !done.Load() {
					start, end := l.StartOffset(), l.EndOffset()
					if end == start {
						continue
					}
					off := start + rng.Int64N(end-start)
					data, err := l.Read(off, 1+rng.IntN(4096), end)
					if errors.Is(err, ErrOffsetOutOfRange) {
						continue
					}
					if err != nil {
						t.Errorf("Read(%d): %v", off, err)
						return
					}
					if hs := splitBatches(t, data); len(hs) == 0 || hs[0].BaseOffset > off || hs[0].LastOffset() < off {
						t.Errorf("Read(%d) did not start with the batch containing it", off)
						return
					}
					if _, _, err := l.OffsetForTime(rng.Int64N(600)); err != nil && !errors.Is(err, ErrOffsetOutOfRange) {
						t.Errorf("OffsetForTime: %v", err)
						return
					}
					if err := l.Batches(off, func(BatchHeader) error { return nil }); err != nil && !errors.Is(err, ErrOffsetOutOfRange) {
						t.Errorf("Batches: %v", err)
						return
					}
				}
			}()
		}
	}
	writers.Wait()
	done.Store(true)
	others.Wait()
	if t.Failed() {
		return
	}
	for _, l := range logs {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if st := c.Stats(); st.Segments != 0 || st.Files != 0 || st.Active != 0 {
		t.Fatalf("after closing the logs: %+v, want nothing open", st)
	}
	t.Logf("%+v", c.Stats())
}
