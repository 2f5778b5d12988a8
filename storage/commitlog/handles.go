package commitlog

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
)

// Defaults that NewFileCache fills in for zero FileCacheOptions fields.
const (
	DefaultFileCacheSegments = 256
	DefaultFileCacheIdle     = time.Minute
)

// FileCacheOptions configures a FileCache. The zero value of every field
// means its default.
type FileCacheOptions struct {
	// MaxSegments bounds the closed segments whose files are open at once,
	// across every log sharing the cache: opening one more closes the
	// least recently used segment that no read is using. Segments being
	// read stay open, so reads in progress can exceed the bound by their
	// number until they finish. Each open segment holds 3 files (.log,
	// .index, .timeindex). Default 256.
	MaxSegments int
	// Idle closes a closed segment's files once it has not been read for
	// this long. The cache's goroutine checks every Idle/2; negative
	// means never (and no goroutine). Default 1 minute.
	Idle time.Duration
	// OnEvict, if set, is called once for every segment whose files were
	// closed because MaxSegments was reached (not for idle ones), on the
	// goroutine of the read that needed the room, with no lock held. It
	// must not block; it is meant for counting a limit hit.
	OnEvict func()
	// Now is the clock of Idle. Default time.Now.
	Now func() time.Time
}

// FileCache keeps the files of closed segments open while they are read,
// for many logs at once (Options.FileCache), so that open file handles do
// not grow with partitions × segments: a closed segment's files are opened
// by the first read that needs them, and closed when the cache holds more
// than MaxSegments open segments (least recently used first) or when they
// have not been read for Idle. A read holds the files it uses, so a read
// racing an eviction, an idle close or retention never sees a closed file.
// A failure to open (EMFILE when the process is out of handles) fails only
// that read; the next read tries again. Active segments are not counted:
// their files stay open while the log is. A rolled segment keeps its files
// open in the cache if it has room, and closes them otherwise (once no read
// uses them): only reads evict.
//
// NewFileCache starts the goroutine of the idle check; Close stops it. All
// methods are safe for concurrent use.
type FileCache struct {
	max     int
	idle    time.Duration
	onEvict func()
	now     func() time.Time

	mu         sync.Mutex
	lru        handle // sentinel: lru.next is the most recently used idle segment, lru.prev the least
	segments   int    // closed segments with open files
	files      int    // their files
	active     int    // active segments of the logs using the cache
	opens      uint64
	openErrors uint64
	evictions  uint64
	idleCloses uint64

	closeOnce sync.Once
	stop      chan struct{} // closed by Close; nil without the idle goroutine
	done      chan struct{} // closed when the idle goroutine returns
}

// FileCacheStats are counts of a FileCache, for tests and metrics.
type FileCacheStats struct {
	Segments   int    // closed segments whose files are open
	Files      int    // files open for them
	Active     int    // active segments (their files are open and not counted above)
	Opens      uint64 // closed segments opened
	OpenErrors uint64 // failed opens, each failing one read
	Evictions  uint64 // segments closed because MaxSegments was reached
	IdleCloses uint64 // segments closed after Idle without a read
}

// NewFileCache returns a cache with options o and, unless o.Idle is
// negative, starts its goroutine that closes idle segments; Close stops it.
// Close the cache after every Log that uses it.
func NewFileCache(o FileCacheOptions) *FileCache {
	if o.MaxSegments <= 0 {
		o.MaxSegments = DefaultFileCacheSegments
	}
	if o.Idle == 0 {
		o.Idle = DefaultFileCacheIdle
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &FileCache{max: o.MaxSegments, idle: o.Idle, onEvict: o.OnEvict, now: o.Now}
	c.lru.prev, c.lru.next = &c.lru, &c.lru
	if c.idle > 0 {
		c.stop, c.done = make(chan struct{}), make(chan struct{})
		go c.closeIdleEvery(max(c.idle/2, time.Millisecond))
	}
	return c
}

// Stats returns the cache's current counts.
func (c *FileCache) Stats() FileCacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return FileCacheStats{
		Segments: c.segments, Files: c.files, Active: c.active,
		Opens: c.opens, OpenErrors: c.openErrors, Evictions: c.evictions, IdleCloses: c.idleCloses,
	}
}

// CloseIdle closes the files of the closed segments not read for Idle, and
// returns how many segments it closed. The cache's goroutine calls it every
// Idle/2; a test with its own clock may call it directly.
func (c *FileCache) CloseIdle() int {
	if c.idle < 0 {
		return 0
	}
	c.mu.Lock()
	now := c.now()
	var victims []*segFiles
	for h := c.lru.prev; h != &c.lru && now.Sub(h.lastUse) >= c.idle; h = c.lru.prev {
		victims = append(victims, c.closeLocked(h))
		c.idleCloses++
	}
	c.mu.Unlock()
	closeAll(victims)
	return len(victims)
}

// Close stops the idle goroutine, waits for it, and closes the files of
// every closed segment no read is using. A log still using the cache
// afterwards reopens files as it reads, and only eviction closes them.
// Close is idempotent and returns nil.
func (c *FileCache) Close() error {
	c.closeOnce.Do(func() {
		if c.stop != nil {
			close(c.stop)
			<-c.done
		}
		c.mu.Lock()
		var victims []*segFiles
		for h := c.lru.prev; h != &c.lru; h = c.lru.prev {
			victims = append(victims, c.closeLocked(h))
		}
		c.mu.Unlock()
		closeAll(victims)
	})
	return nil
}

func (c *FileCache) closeIdleEvery(d time.Duration) {
	defer close(c.done)
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.CloseIdle()
		}
	}
}

// handle is a segment's place in its log's FileCache. Its fields are
// guarded by the cache's mu.
type handle struct {
	files   *segFiles // nil while the segment's files are closed
	refs    int       // reads using files, plus one held by the log while the segment is active
	active  bool      // the log's active segment: never evicted, not counted
	counted bool      // files are open and counted in the cache's segments
	gone    bool      // deleted by retention or its log closed: never opened again
	lastUse time.Time // when the last read released files

	prev, next *handle // links in the cache's list of idle open segments, nil when not in it
}

// segFiles are a segment's open files.
type segFiles struct {
	log, off, time File
}

func (f *segFiles) count() int {
	n := 0
	for _, x := range []File{f.log, f.off, f.time} {
		if x != nil {
			n++
		}
	}
	return n
}

func (f *segFiles) close() error {
	var err error
	for _, x := range []File{f.log, f.off, f.time} {
		if x != nil {
			err = errors.Join(err, x.Close())
		}
	}
	return err
}

func closeAll(fs []*segFiles) {
	for _, f := range fs {
		f.close() // read-only files, or fsynced when their segment was sealed
	}
}

// errGone is what a read gets for a segment that retention deleted, or
// whose log was closed, before the read could hold its files; Read turns
// it into ErrOffsetOutOfRange or ErrClosed.
var errGone = fmt.Errorf("segment files released: %w", os.ErrClosed)

// acquire returns h's files for a read, opening them with open when they
// are closed, and holds them open until release. A failed open is returned
// and nothing is kept, so the next acquire tries again. Opening happens
// without the lock held; two reads opening the same segment at once keep
// the first one's files.
func (c *FileCache) acquire(h *handle, open func() (*segFiles, error)) (*segFiles, error) {
	c.mu.Lock()
	if h.gone {
		c.mu.Unlock()
		return nil, errGone
	}
	if f := c.holdLocked(h); f != nil {
		c.mu.Unlock()
		return f, nil
	}
	c.mu.Unlock()
	f, err := open()
	c.mu.Lock()
	if err != nil {
		c.openErrors++
		c.mu.Unlock()
		return nil, err
	}
	c.opens++
	if h.gone || h.files != nil {
		var held *segFiles
		if !h.gone {
			held = c.holdLocked(h)
		}
		c.mu.Unlock()
		f.close()
		if held == nil {
			return nil, errGone
		}
		return held, nil
	}
	h.files, h.refs, h.counted = f, 1, true
	c.segments++
	c.files += f.count()
	victims := c.evictLocked()
	c.mu.Unlock()
	c.evicted(victims)
	return f, nil
}

// holdLocked takes a reference on h's files if they are open. The caller
// holds mu.
func (c *FileCache) holdLocked(h *handle) *segFiles {
	if h.files == nil {
		return nil
	}
	if h.next != nil {
		c.unlinkLocked(h)
	}
	h.refs++
	return h.files
}

// pin takes another reference on the open files of an active segment, for
// a caller (Sync) that must use them after the segment may have been
// rolled. Release it with release.
func (c *FileCache) pin(h *handle) {
	c.mu.Lock()
	h.refs++
	c.mu.Unlock()
}

// release drops a reference taken by acquire or pin. The last reference to
// a closed segment's files makes them the most recently used idle ones; the
// last reference to the files of a gone segment, or of a rolled one the
// cache had no room for, closes them.
func (c *FileCache) release(h *handle) {
	c.mu.Lock()
	h.refs--
	if h.refs > 0 || h.files == nil {
		c.mu.Unlock()
		return
	}
	if h.gone || !h.counted {
		f := c.closeLocked(h)
		c.mu.Unlock()
		f.close()
		return
	}
	h.lastUse = c.now()
	c.pushLocked(h)
	victims := c.evictLocked()
	c.mu.Unlock()
	c.evicted(victims)
}

// activate registers f, the open files of a log's new active segment. The
// log holds them until retire or drop.
func (c *FileCache) activate(h *handle, f *segFiles) {
	c.mu.Lock()
	h.files, h.refs, h.active = f, h.refs+1, true
	c.active++
	c.mu.Unlock()
}

// retire hands the files of a segment that was just sealed (the previous
// active segment) to the cache, as the most recently used, if it has room;
// else they close once no read or Sync uses them. Rolling never evicts
// another segment: only reads do.
func (c *FileCache) retire(h *handle) {
	c.mu.Lock()
	h.active = false
	c.active--
	if c.segments < c.max {
		h.counted = true
		c.segments++
		c.files += h.files.count()
	}
	c.mu.Unlock()
	c.release(h)
}

// drop marks h gone, its segment deleted or its log closing, and closes its
// files now, or when the last read using them releases them. It returns the
// error of closing them now.
func (c *FileCache) drop(h *handle) error {
	c.mu.Lock()
	if h.gone {
		c.mu.Unlock()
		return nil
	}
	h.gone = true
	if h.active {
		h.active = false
		c.active--
		h.refs--
	}
	if h.files == nil || h.refs > 0 {
		c.mu.Unlock()
		return nil
	}
	f := c.closeLocked(h)
	c.mu.Unlock()
	return f.close()
}

// evictLocked takes the least recently used idle segments out of the cache
// while it holds more than max, and returns their files for the caller to
// close (with evicted) after unlocking mu.
func (c *FileCache) evictLocked() []*segFiles {
	var victims []*segFiles
	for c.segments > c.max && c.lru.prev != &c.lru {
		victims = append(victims, c.closeLocked(c.lru.prev))
		c.evictions++
	}
	return victims
}

// evicted closes the files of segments evicted for room and reports each.
func (c *FileCache) evicted(victims []*segFiles) {
	closeAll(victims)
	if c.onEvict != nil {
		for range victims {
			c.onEvict()
		}
	}
}

// closeLocked takes h's files, which no read uses, out of the cache and
// returns them for the caller to close after unlocking mu.
func (c *FileCache) closeLocked(h *handle) *segFiles {
	if h.next != nil {
		c.unlinkLocked(h)
	}
	f := h.files
	h.files = nil
	if h.counted {
		h.counted = false
		c.segments--
		c.files -= f.count()
	}
	return f
}

func (c *FileCache) pushLocked(h *handle) {
	h.prev, h.next = &c.lru, c.lru.next
	c.lru.next.prev = h
	c.lru.next = h
}

func (c *FileCache) unlinkLocked(h *handle) {
	h.prev.next, h.next.prev = h.next, h.prev
	h.prev, h.next = nil, nil
}

// openSegmentFiles opens the three files of closed segment s read-only.
func openSegmentFiles(fsys FS, s *segment) (*segFiles, error) {
	f := &segFiles{}
	for _, o := range []struct {
		dst  *File
		path string
	}{{&f.log, s.logPath}, {&f.off, s.offIdx.path}, {&f.time, s.timeIdx.path}} {
		x, err := fsys.OpenFile(o.path, os.O_RDONLY, 0)
		if err != nil {
			f.close()
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				return nil, fmt.Errorf("open segment %d: %w (the process is out of file handles: "+
					"lower the segments the FileCache keeps open or raise the open-file limit, ulimit -n)", s.base, err)
			}
			return nil, fmt.Errorf("open segment %d: %w", s.base, err)
		}
		*o.dst = x
	}
	return f, nil
}

// acquire returns the open files of s for a read, opening them through the
// log's FileCache if they are closed. Release them with l.release(s).
func (l *Log) acquire(s *segment) (*segFiles, error) {
	return l.files.acquire(&s.h, func() (*segFiles, error) { return openSegmentFiles(l.fs, s) })
}

// release lets go of files returned by acquire.
func (l *Log) release(s *segment) { l.files.release(&s.h) }
