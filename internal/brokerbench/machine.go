package brokerbench

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/factorywire/factorywire/internal/benchkit"
)

// machineInfo describes where a run happened, for the report: the
// machine, and the disk the brokers write to.
type machineInfo struct {
	benchkit.Machine
	Disk string // device and filesystem holding the data dirs
	Java string // `java -version`'s first line, when Apache Kafka runs

	// Fsync4K and Fsync1M are the median and 99th percentile of
	// appending 4 KiB or 1 MiB to a file and fsyncing it, in the data
	// dirs' filesystem: the floor under every produce with fsync before
	// ack.
	Fsync4K, Fsync1M [2]time.Duration
}

// readMachine collects the machine's description; dir is where the data
// dirs live.
func readMachine(dir string) machineInfo {
	return machineInfo{Machine: benchkit.ReadMachine(sourceDirs...), Disk: mountOf(dir)}
}

// mountOf returns "device (fstype) on mountpoint" for the longest mount
// point in /proc/mounts that holds dir.
func mountOf(dir string) string {
	abs, err := filepath.EvalSymlinks(dir)
	if err != nil {
		abs = dir
	}
	f, err := os.Open("/proc/mounts")
	if err != nil {
		return ""
	}
	defer f.Close()
	best, bestLen := "", -1
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 3 {
			continue
		}
		mp := fs[1]
		if (abs == mp || strings.HasPrefix(abs, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > bestLen {
			best, bestLen = fmt.Sprintf("%s (%s) on %s", fs[0], fs[2], mp), len(mp)
		}
	}
	return best
}

// sourceDirs are the packages whose code the figures describe.
var sourceDirs = []string{"broker", "storage/commitlog"}

// measureFsync times n appends of size bytes, each followed by fsync, to a
// new file in dir, and returns the median and 99th percentile.
func measureFsync(dir string, size, n int) ([2]time.Duration, error) {
	f, err := os.CreateTemp(dir, "fsync-probe-")
	if err != nil {
		return [2]time.Duration{}, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, size)
	for i := range buf {
		buf[i] = byte(i)
	}
	lat := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if _, err := f.Write(buf); err != nil {
			return [2]time.Duration{}, err
		}
		if err := f.Sync(); err != nil {
			return [2]time.Duration{}, err
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	return [2]time.Duration{benchkit.Percentile(lat, 50), benchkit.Percentile(lat, 99)}, nil
}
