package main

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/factorywire/factorywire/internal/procstat"
)

// machineInfo describes where a run happened, for the report.
type machineInfo struct {
	CPUs      int
	Model     string
	MemTotal  string
	Kernel    string
	GoVersion string
	Disk      string // device and filesystem holding the data dirs
	LoadStart string // /proc/loadavg when the run began
	LoadEnd   string // and when it ended
	Source    string // sourceFingerprint

	// Fsync4K and Fsync1M are the median and 99th percentile of
	// appending 4 KiB or 1 MiB to a file and fsyncing it, in the data
	// dirs' filesystem: the floor under every produce with fsync before
	// ack.
	Fsync4K, Fsync1M [2]time.Duration
}

// readMachine collects the machine's description; dir is where the data
// dirs live.
func readMachine(dir string) machineInfo {
	m := machineInfo{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	m.Model = procstat.FirstField("/proc/cpuinfo", "model name")
	if kb := procstat.FirstField("/proc/meminfo", "MemTotal"); kb != "" {
		var n int64
		fmt.Sscanf(kb, "%d", &n)
		m.MemTotal = fmt.Sprintf("%.1f GiB", float64(n)/(1<<20))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.Disk = mountOf(dir)
	m.LoadStart = procstat.LoadAvg()
	m.Source = sourceFingerprint()
	return m
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

// sourceFingerprint identifies the broker code a run measured, when run from
// the module root (as `go run ./cmd/brokerbench` is): a SHA-256 prefix over
// the non-test Go files of sourceDirs and the newest modification time among
// them. It returns "" elsewhere.
func sourceFingerprint() string {
	if b, err := os.ReadFile("go.mod"); err != nil || !strings.HasPrefix(string(b), "module github.com/factorywire/factorywire\n") {
		return ""
	}
	h := sha256.New()
	var newest time.Time
	files := 0
	for _, dir := range sourceDirs {
		names, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			return ""
		}
		slices.Sort(names)
		for _, name := range names {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			b, err := os.ReadFile(name)
			if err != nil {
				return ""
			}
			if st, err := os.Stat(name); err == nil && st.ModTime().After(newest) {
				newest = st.ModTime()
			}
			fmt.Fprintf(h, "%s %d\n", name, len(b))
			h.Write(b)
			files++
		}
	}
	return fmt.Sprintf("%x (%d files in %s, newest modified %s)", h.Sum(nil)[:6], files,
		strings.Join(sourceDirs, " and "), newest.UTC().Format("2006-01-02 15:04:05 MST"))
}

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
	return [2]time.Duration{percentile(lat, 50), percentile(lat, 99)}, nil
}
