package main

import (
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
	LoadStart string // /proc/loadavg when the run began
	LoadEnd   string // and when it ended
	Source    string // sourceFingerprint
}

// readMachine collects the machine's description.
func readMachine() machineInfo {
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
	m.LoadStart = procstat.LoadAvg()
	m.Source = sourceFingerprint()
	return m
}

// sourceDirs are the packages whose code the figures describe.
var sourceDirs = []string{"gateway", "devices", "devices/modbus", "devices/simulator", "storage/commitlog", "internal/recordbatch"}

// sourceFingerprint identifies the code a run measured, when run from the
// module root (as `go run ./cmd/gatewaybench` is): a SHA-256 prefix over
// the non-test Go files of sourceDirs and the newest modification time
// among them. It returns "" elsewhere.
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
	return fmt.Sprintf("`%x` (%d files in %s; newest modified %s)", h.Sum(nil)[:6], files,
		strings.Join(sourceDirs, ", "), newest.UTC().Format("2006-01-02 15:04:05 MST"))
}
