package commitlog

import (
	"bytes"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// memFS is an in-memory FS that simulates power loss. For every file it
// keeps the contents as of the last fsync and the writes and truncations
// made since; for every directory, the entries as of the last SyncDir. crash
// throws away what was not synced, or keeps a random prefix of the unsynced
// operations of each file with the next one torn: partly written, and
// possibly followed by zeros up to the end of that write or of all the
// unsynced writes, as when a file's size reached the disk before its data
// (the data that did arrive then ends at a 512-byte sector boundary).
// Writes are not reordered within a file. Directories themselves are
// durable once created.
//
// fail, when set, is called before each operation and can inject an error.
type memFS struct {
	mu   sync.Mutex
	dirs map[string]*memDir
	fail func(op, name string) error
}

type memDir struct {
	live   map[string]*memNode
	synced map[string]*memNode
}

type memNode struct {
	data   []byte
	synced []byte
	ops    []memOp // since the last fsync
	mtime  time.Time
}

// memOp is a write at off, or a truncation to size.
type memOp struct {
	off   int64
	data  []byte
	trunc bool
	size  int64
}

func (op memOp) apply(b []byte) []byte {
	if op.trunc {
		if op.size <= int64(len(b)) {
			return b[:op.size]
		}
		return append(b, make([]byte, op.size-int64(len(b)))...)
	}
	if end := op.off + int64(len(op.data)); end > int64(len(b)) {
		b = append(b, make([]byte, end-int64(len(b)))...)
	}
	copy(b[op.off:], op.data)
	return b
}

func newMemFS() *memFS {
	return &memFS{dirs: map[string]*memDir{"/": newMemDir()}}
}

func newMemDir() *memDir {
	return &memDir{live: map[string]*memNode{}, synced: map[string]*memNode{}}
}

func (m *memFS) check(op, name string) error {
	if m.fail != nil {
		return m.fail(op, name)
	}
	return nil
}

// setFail sets the fault injector; nil removes it.
func (m *memFS) setFail(f func(op, name string) error) {
	m.mu.Lock()
	m.fail = f
	m.mu.Unlock()
}

// pauseFail removes the fault injector until resume puts it back, with its
// state.
func (m *memFS) pauseFail() (resume func()) {
	m.mu.Lock()
	f := m.fail
	m.fail = nil
	m.mu.Unlock()
	return func() { m.setFail(f) }
}

func pathErr(op, name string, err error) error { return &fs.PathError{Op: op, Path: name, Err: err} }

func (m *memFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check("open", name); err != nil {
		return nil, err
	}
	d := m.dirs[filepath.Dir(name)]
	if d == nil {
		return nil, pathErr("open", name, fs.ErrNotExist)
	}
	if m.dirs[name] != nil {
		return nil, pathErr("open", name, fs.ErrInvalid)
	}
	n := d.live[filepath.Base(name)]
	switch {
	case n == nil && flag&os.O_CREATE == 0:
		return nil, pathErr("open", name, fs.ErrNotExist)
	case n != nil && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return nil, pathErr("open", name, fs.ErrExist)
	case n == nil:
		n = &memNode{mtime: time.Now()}
		d.live[filepath.Base(name)] = n
	}
	f := &memFile{fs: m, node: n, name: name, flag: flag}
	if flag&os.O_TRUNC != 0 {
		n.do(memOp{trunc: true})
	}
	return f, nil
}

func (n *memNode) do(op memOp) {
	if !op.trunc {
		op.data = bytes.Clone(op.data)
	}
	n.ops = append(n.ops, op)
	n.data = op.apply(n.data)
	n.mtime = time.Now()
}

func (m *memFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check("remove", name); err != nil {
		return err
	}
	if d := m.dirs[name]; d != nil {
		if len(d.live) > 0 {
			return pathErr("remove", name, fs.ErrInvalid)
		}
		delete(m.dirs, name)
		return nil
	}
	d := m.dirs[filepath.Dir(name)]
	if d == nil || d.live[filepath.Base(name)] == nil {
		return pathErr("remove", name, fs.ErrNotExist)
	}
	delete(d.live, filepath.Base(name))
	return nil
}

func (m *memFS) Rename(oldname, newname string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check("rename", oldname); err != nil {
		return err
	}
	od, nd := m.dirs[filepath.Dir(oldname)], m.dirs[filepath.Dir(newname)]
	if od == nil || nd == nil || od.live[filepath.Base(oldname)] == nil {
		return pathErr("rename", oldname, fs.ErrNotExist)
	}
	nd.live[filepath.Base(newname)] = od.live[filepath.Base(oldname)]
	delete(od.live, filepath.Base(oldname))
	return nil
}

func (m *memFS) MkdirAll(path string, perm os.FileMode) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for p := filepath.Clean(path); m.dirs[p] == nil; p = filepath.Dir(p) {
		m.dirs[p] = newMemDir()
	}
	return nil
}

func (m *memFS) ReadDir(name string) ([]os.DirEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := m.dirs[name]
	if d == nil {
		return nil, pathErr("readdir", name, fs.ErrNotExist)
	}
	var es []os.DirEntry
	for _, child := range slices.Sorted(maps.Keys(d.live)) {
		n := d.live[child]
		es = append(es, fs.FileInfoToDirEntry(memInfo{name: child, size: int64(len(n.data)), mtime: n.mtime}))
	}
	return es, nil
}

func (m *memFS) Stat(name string) (os.FileInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dirs[name] != nil {
		return memInfo{name: filepath.Base(name), dir: true}, nil
	}
	d := m.dirs[filepath.Dir(name)]
	if d == nil || d.live[filepath.Base(name)] == nil {
		return nil, pathErr("stat", name, fs.ErrNotExist)
	}
	n := d.live[filepath.Base(name)]
	return memInfo{name: filepath.Base(name), size: int64(len(n.data)), mtime: n.mtime}, nil
}

func (m *memFS) SyncDir(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check("syncdir", name); err != nil {
		return err
	}
	d := m.dirs[name]
	if d == nil {
		return pathErr("sync", name, fs.ErrNotExist)
	}
	d.synced = maps.Clone(d.live)
	return nil
}

// crash simulates power loss: every directory reverts to its synced
// entries and every file to its synced contents, plus, when rng is not nil,
// a random prefix of its unsynced operations of which the last may be torn.
// Files opened before the crash no longer reach the new state.
func (m *memFS) crash(rng *rand.Rand) {
	m.mu.Lock()
	defer m.mu.Unlock()
	after := map[*memNode]*memNode{}
	for _, dir := range slices.Sorted(maps.Keys(m.dirs)) { // sorted: rng draws in a fixed order
		d := m.dirs[dir]
		live := map[string]*memNode{}
		for _, name := range slices.Sorted(maps.Keys(d.synced)) {
			n := d.synced[name]
			if after[n] == nil {
				after[n] = n.afterCrash(rng)
			}
			live[name] = after[n]
		}
		d.live, d.synced = live, maps.Clone(live)
	}
}

func (n *memNode) afterCrash(rng *rand.Rand) *memNode {
	data := bytes.Clone(n.synced)
	if rng != nil && len(n.ops) > 0 {
		k := rng.IntN(len(n.ops) + 1)
		for _, op := range n.ops[:k] {
			data = op.apply(data)
		}
		if k < len(n.ops) && !n.ops[k].trunc && rng.IntN(2) == 0 {
			torn := n.ops[k]
			cut := rng.IntN(len(torn.data) + 1)
			size := int64(len(data)) // the file's size as the crash leaves it
			switch rng.IntN(3) {
			case 0: // the size covers this write, only part of its data arrived
				size = max(size, torn.off+int64(len(torn.data)))
			case 1: // the size covers every unsynced write, little data arrived
				size = max(size, int64(len(n.data)))
			}
			if size > int64(len(data)) {
				// Data that reached the disk did so in whole
				// sectors: the zeros start at the write's start
				// or at a sector boundary.
				end := torn.off + int64(cut)
				cut = int(max(end-end%sectorSize-torn.off, 0))
			}
			torn.data = torn.data[:cut]
			data = torn.apply(data)
			if int64(len(data)) < size {
				data = append(data, make([]byte, size-int64(len(data)))...)
			}
		}
	}
	return &memNode{data: data, synced: bytes.Clone(data), mtime: n.mtime}
}

// writeFile creates a synced file with the given contents, and its
// directory.
func (m *memFS) writeFile(t testing.TB, name string, data []byte) {
	t.Helper()
	if err := m.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := m.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := m.SyncDir(filepath.Dir(name)); err != nil {
		t.Fatal(err)
	}
}

type memFile struct {
	fs     *memFS
	node   *memNode
	name   string
	flag   int
	off    int64 // write position without O_APPEND
	closed bool
}

func (f *memFile) ReadAt(b []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return 0, pathErr("read", f.name, os.ErrClosed)
	}
	if off >= int64(len(f.node.data)) {
		return 0, io.EOF
	}
	n := copy(b, f.node.data[off:])
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) Write(b []byte) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return 0, pathErr("write", f.name, os.ErrClosed)
	}
	if f.flag&(os.O_WRONLY|os.O_RDWR) == 0 {
		return 0, pathErr("write", f.name, fs.ErrPermission)
	}
	if err := f.fs.check("write", f.name); err != nil {
		return 0, err
	}
	if f.flag&os.O_APPEND != 0 {
		f.off = int64(len(f.node.data))
	}
	f.node.do(memOp{off: f.off, data: b})
	f.off += int64(len(b))
	return len(b), nil
}

func (f *memFile) Sync() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return pathErr("sync", f.name, os.ErrClosed)
	}
	if err := f.fs.check("sync", f.name); err != nil {
		return err
	}
	f.node.synced = bytes.Clone(f.node.data)
	f.node.ops = nil
	return nil
}

func (f *memFile) Truncate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return pathErr("truncate", f.name, os.ErrClosed)
	}
	if err := f.fs.check("truncate", f.name); err != nil {
		return err
	}
	f.node.do(memOp{trunc: true, size: size})
	return nil
}

func (f *memFile) Stat() (os.FileInfo, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return nil, pathErr("stat", f.name, os.ErrClosed)
	}
	return memInfo{name: filepath.Base(f.name), size: int64(len(f.node.data)), mtime: f.node.mtime}, nil
}

func (f *memFile) Close() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return pathErr("close", f.name, os.ErrClosed)
	}
	f.closed = true
	return nil
}

type memInfo struct {
	name  string
	size  int64
	mtime time.Time
	dir   bool
}

func (i memInfo) Name() string       { return i.name }
func (i memInfo) Size() int64        { return i.size }
func (i memInfo) ModTime() time.Time { return i.mtime }
func (i memInfo) IsDir() bool        { return i.dir }
func (i memInfo) Sys() any           { return nil }
func (i memInfo) Mode() os.FileMode {
	if i.dir {
		return fs.ModeDir | 0o755
	}
	return 0o644
}

// countingFS wraps an FS, counting fsyncs of segment (.log) files and
// calling beforeSync, if set, before each of them.
type countingFS struct {
	FS
	logSyncs   atomic.Int64
	beforeSync func(name string)
}

func (c *countingFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := c.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &countingFile{File: f, fs: c, name: name}, nil
}

type countingFile struct {
	File
	fs   *countingFS
	name string
}

func (f *countingFile) Sync() error {
	if strings.HasSuffix(f.name, logSuffix) {
		if f.fs.beforeSync != nil {
			f.fs.beforeSync(f.name)
		}
		f.fs.logSyncs.Add(1)
	}
	return f.File.Sync()
}

// TestMemFSCrash checks the power-loss model the crash tests rely on.
func TestMemFSCrash(t *testing.T) {
	m := newMemFS()
	m.MkdirAll("/d", 0o755)
	f, _ := m.OpenFile("/d/a", os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	f.Write([]byte("synced"))
	f.Sync()
	m.SyncDir("/d")
	f.Write([]byte("-lost"))
	g, _ := m.OpenFile("/d/b", os.O_RDWR|os.O_CREATE, 0o644) // entry never synced
	g.Write([]byte("x"))
	g.Sync()
	m.crash(nil)

	names, _ := m.ReadDir("/d")
	if len(names) != 1 || names[0].Name() != "a" {
		t.Fatalf("after crash the directory holds %v, want only a", names)
	}
	h, err := m.OpenFile("/d/a", os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 20)
	n, _ := h.ReadAt(buf, 0)
	if got := string(buf[:n]); got != "synced" {
		t.Fatalf("after crash a holds %q, want %q", got, "synced")
	}
	if _, err := f.Write([]byte("stale handle")); err != nil {
		t.Fatal(err)
	}
	if n, _ := h.ReadAt(buf, 0); n != len("synced") {
		t.Fatalf("a write through a handle opened before the crash reached the new state")
	}

	// Torn crashes keep a prefix of the unsynced writes.
	rng := rand.New(rand.NewPCG(1, 2))
	for range 100 {
		m := newMemFS()
		m.MkdirAll("/d", 0o755)
		f, _ := m.OpenFile("/d/a", os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
		m.SyncDir("/d")
		f.Write([]byte("abc"))
		f.Sync()
		f.Write([]byte("def"))
		f.Write([]byte("ghi"))
		m.crash(rng)
		h, _ := m.OpenFile("/d/a", os.O_RDONLY, 0)
		n, _ := h.ReadAt(buf, 0)
		got := buf[:n]
		want := []byte("abcdefghi")
		if len(got) < 3 || len(got) > len(want) {
			t.Fatalf("torn crash left %q", got)
		}
		for i, c := range got {
			if c != want[i] && c != 0 {
				t.Fatalf("torn crash left %q: not a prefix of %q (or zeros)", got, want)
			}
		}
	}
}
