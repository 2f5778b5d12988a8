package commitlog

import (
	"io"
	"os"
)

// FS is the file system a Log uses, in the style of Pebble's vfs: Options.FS
// lets tests inject faults and simulate power loss. Paths are passed as the
// Log builds them from its directory with filepath.Join. Implementations must
// be safe for concurrent use.
type FS interface {
	// OpenFile opens a file like os.OpenFile. The Log opens files it
	// appends to with os.O_APPEND.
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	Remove(name string) error
	Rename(oldname, newname string) error
	MkdirAll(path string, perm os.FileMode) error
	ReadDir(name string) ([]os.DirEntry, error)
	Stat(name string) (os.FileInfo, error)
	// SyncDir makes the directory's entries durable (fsync of the
	// directory): files created, renamed or removed in it.
	SyncDir(name string) error
}

// File is an open file of an FS. ReadAt must be safe to call concurrently
// with itself and with Write, Sync and Close, and fail after Close (as it
// does for *os.File).
type File interface {
	io.ReaderAt
	io.Writer
	io.Closer
	Sync() error
	Truncate(size int64) error
	Stat() (os.FileInfo, error)
}

// OSFS is the operating system's file system, the default Options.FS.
var OSFS FS = osFS{}

type osFS struct{}

func (osFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err // not a nil *os.File in a non-nil File
	}
	return f, nil
}

func (osFS) Remove(name string) error                     { return os.Remove(name) }
func (osFS) Rename(oldname, newname string) error         { return os.Rename(oldname, newname) }
func (osFS) MkdirAll(path string, perm os.FileMode) error { return os.MkdirAll(path, perm) }
func (osFS) ReadDir(name string) ([]os.DirEntry, error)   { return os.ReadDir(name) }
func (osFS) Stat(name string) (os.FileInfo, error)        { return os.Stat(name) }

func (osFS) SyncDir(name string) error {
	d, err := os.Open(name)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
