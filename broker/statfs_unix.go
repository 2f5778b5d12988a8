//go:build unix

package broker

import "syscall"

// diskSpace returns the size of the file system holding dir and the bytes
// an unprivileged process may still write to it (as Java's
// FileStore.getTotalSpace and getUsableSpace, which Kafka reports).
func diskSpace(dir string) (total, usable int64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	bsize := int64(st.Bsize)
	return int64(st.Blocks) * bsize, int64(st.Bavail) * bsize, nil
}
