//go:build unix

package broker

import "syscall"

// openFilesLimit returns the process's limit on open files (RLIMIT_NOFILE,
// the soft limit, which Go raises to the hard one at start), or 0 if it
// cannot be read.
func openFilesLimit() uint64 {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0
	}
	return r.Cur
}
