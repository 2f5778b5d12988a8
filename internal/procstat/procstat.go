// Package procstat reads the Linux /proc figures the benchmark tools
// (cmd/brokerbench, cmd/gatewaybench) measure processes and the machine by:
// a process's memory and CPU time, the machine's busy time, load and CPU
// pressure.
package procstat

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Mem is a process's memory from /proc/PID/status, in bytes.
type Mem struct {
	RSS  int64 // VmRSS: resident now
	HWM  int64 // VmHWM: peak resident since start
	Anon int64 // RssAnon: resident anonymous memory (heap, stacks)
	File int64 // RssFile: resident file-backed pages (mmapped files, the binary)
}

// ReadMem reads the memory of process pid (0 means this process).
func ReadMem(pid int) (Mem, error) {
	b, err := os.ReadFile(procPath(pid, "status"))
	if err != nil {
		return Mem{}, err
	}
	var m Mem
	fields := map[string]*int64{"VmRSS:": &m.RSS, "VmHWM:": &m.HWM, "RssAnon:": &m.Anon, "RssFile:": &m.File}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		if dst, ok := fields[f[0]]; ok {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return Mem{}, fmt.Errorf("%s: parse %s %q: %w", procPath(pid, "status"), f[0], f[1], err)
			}
			*dst = kb << 10
		}
	}
	if m.RSS == 0 {
		return Mem{}, fmt.Errorf("%s: no VmRSS line", procPath(pid, "status"))
	}
	return m, nil
}

// clockTick is the unit of utime and stime in /proc/PID/stat: USER_HZ,
// 100 on every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// CPU returns the user plus system CPU time process pid (0 means this
// process) has used, from /proc/PID/stat.
func CPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(procPath(pid, "stat"))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces and parentheses: the
	// fields that follow start after its last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("%s: malformed", procPath(pid, "stat"))
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("%s: only %d fields", procPath(pid, "stat"), len(f)+2)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: parse %q: %w", procPath(pid, "stat"), s, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}

// SelfCPU returns the user plus system CPU time of this process, every
// thread, from getrusage (microsecond resolution).
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		d, _ := CPU(0)
		return d
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Busy returns the CPU time every process on the machine has used
// (user, nice, system, irq, softirq and steal from the cpu line of
// /proc/stat): with this process's and the broker's CPU time subtracted, it
// tells how much other load shared the machine during a phase.
func Busy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} { // user nice system irq softirq steal
		n, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: parse %q: %w", f[i], err)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}

func procPath(pid int, file string) string {
	if pid == 0 {
		return "/proc/self/" + file
	}
	return fmt.Sprintf("/proc/%d/%s", pid, file)
}

// DirBytes returns the apparent size of every regular file under dir.
func DirBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if info, err := d.Info(); err == nil {
			n += info.Size()
		}
		return nil
	})
	return n
}

// FirstField returns the value of the first "key : value" line of a /proc
// file.
func FirstField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// LoadAvg returns the 1, 5 and 15 minute load averages and, where the
// kernel has PSI, the share of the last 60 and 300 seconds in which some
// runnable task waited for a CPU.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	s := strings.Join(f[:3], " ")
	if p, err := os.ReadFile("/proc/pressure/cpu"); err == nil {
		line, _, _ := strings.Cut(string(p), "\n")
		var avg10, avg60, avg300 float64
		if _, err := fmt.Sscanf(line, "some avg10=%f avg60=%f avg300=%f", &avg10, &avg60, &avg300); err == nil {
			s += fmt.Sprintf(" (CPU pressure %.0f%% / %.0f%%)", avg60, avg300)
		}
	}
	return s
}
