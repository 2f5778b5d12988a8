package main

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

// The /proc readers below are cmd/brokerbench's (procstat.go), copied
// rather than shared: a shared package would mean changing brokerbench.

// memStat is a process's memory from /proc/PID/status, in bytes.
type memStat struct {
	RSS int64 // VmRSS: resident now
	HWM int64 // VmHWM: peak resident since start
}

// readMem reads the memory of process pid (0 means this process).
func readMem(pid int) (memStat, error) {
	b, err := os.ReadFile(procPath(pid, "status"))
	if err != nil {
		return memStat{}, err
	}
	var m memStat
	fields := map[string]*int64{"VmRSS:": &m.RSS, "VmHWM:": &m.HWM}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		if dst, ok := fields[f[0]]; ok {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return memStat{}, fmt.Errorf("%s: parse %s %q: %w", procPath(pid, "status"), f[0], f[1], err)
			}
			*dst = kb << 10
		}
	}
	if m.RSS == 0 {
		return memStat{}, fmt.Errorf("%s: no VmRSS line", procPath(pid, "status"))
	}
	return m, nil
}

// clockTick is the unit of utime and stime in /proc/PID/stat: USER_HZ,
// 100 on every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// readCPU returns the user plus system CPU time process pid has used, from
// /proc/PID/stat (10 ms resolution). For this process, selfCPU is finer.
func readCPU(pid int) (time.Duration, error) {
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

// selfCPU returns the user plus system CPU time of this process, every
// thread, from getrusage (microsecond resolution).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		d, _ := readCPU(0)
		return d
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// readBusy returns the CPU time every process on the machine has used
// (user, nice, system, irq, softirq and steal from the cpu line of
// /proc/stat): with the measured processes' CPU time subtracted, it tells
// how much other load shared the machine during a phase.
func readBusy() (time.Duration, error) {
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

// usage is the CPU time used during one measured phase.
type usage struct {
	Wall  time.Duration
	Self  time.Duration   // this process
	Procs []time.Duration // each measured child, in the order given to startMeter
	Other time.Duration   // every other process on the machine: the noise
}

// busyCores is how many cores the whole machine kept busy during the
// phase: this process, the measured children and everything else.
func (u usage) busyCores() float64 {
	d := u.Self + u.Other
	for _, p := range u.Procs {
		d += p
	}
	return u.cores(d)
}

// cores returns CPU time d as cores used over the phase.
func (u usage) cores(d time.Duration) float64 {
	if u.Wall <= 0 {
		return 0
	}
	return d.Seconds() / u.Wall.Seconds()
}

// meter measures a usage: startMeter, then stop.
type meter struct {
	pids  []int
	start time.Time
	self  time.Duration
	procs []time.Duration
	busy  time.Duration
}

// startMeter starts measuring a phase in which the children pids run.
func startMeter(pids ...int) meter {
	m := meter{pids: pids, procs: make([]time.Duration, len(pids))}
	for i, pid := range pids {
		m.procs[i], _ = readCPU(pid)
	}
	m.busy, _ = readBusy()
	m.self = selfCPU()
	m.start = time.Now()
	return m
}

// stop ends the phase. It fails if a child's CPU time cannot be read (the
// child has exited).
func (m meter) stop() (usage, error) {
	u := usage{Wall: time.Since(m.start), Self: selfCPU() - m.self, Procs: make([]time.Duration, len(m.pids))}
	busy, _ := readBusy()
	measured := u.Self
	for i, pid := range m.pids {
		d, err := readCPU(pid)
		if err != nil {
			return usage{}, fmt.Errorf("cpu of child %d: %w", pid, err)
		}
		u.Procs[i] = d - m.procs[i]
		measured += u.Procs[i]
	}
	u.Other = max(busy-m.busy-measured, 0)
	return u, nil
}

func procPath(pid int, file string) string {
	if pid == 0 {
		return "/proc/self/" + file
	}
	return fmt.Sprintf("/proc/%d/%s", pid, file)
}

// dirBytes returns the apparent size of every regular file under dir.
func dirBytes(dir string) int64 {
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
