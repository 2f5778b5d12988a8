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
	"time"
)

// memStat is a process's memory from /proc/PID/status, in bytes.
type memStat struct {
	RSS  int64 // VmRSS: resident now
	HWM  int64 // VmHWM: peak resident since start
	Anon int64 // RssAnon: resident anonymous memory (heap, stacks)
	File int64 // RssFile: resident file-backed pages (mmapped files, the binary)
}

// readMem reads the memory of process pid (0 means this process).
func readMem(pid int) (memStat, error) {
	b, err := os.ReadFile(procPath(pid, "status"))
	if err != nil {
		return memStat{}, err
	}
	var m memStat
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

// readCPU returns the user plus system CPU time process pid (0 means this
// process) has used, from /proc/PID/stat.
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

// readBusy returns the CPU time every process on the machine has used
// (user, nice, system, irq, softirq and steal from the cpu line of
// /proc/stat): with this process's and the broker's CPU time subtracted, it
// tells how much other load shared the machine during a phase.
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

// phaseCPU is the CPU time used during one phase of a run.
type phaseCPU struct {
	BrokerCPU time.Duration // the broker process's user+system time
	ClientCPU time.Duration // this process's: the clients'
	OtherCPU  time.Duration // every other process's on the machine: the noise
	Wall      time.Duration // the phase's length
}

// otherCores is the average number of cores other processes kept busy
// during the phase.
func (c phaseCPU) otherCores() float64 {
	if c.Wall <= 0 {
		return 0
	}
	return c.OtherCPU.Seconds() / c.Wall.Seconds()
}

// cpuMeter measures a phaseCPU: startCPU, then stop.
type cpuMeter struct {
	pid                 int
	start               time.Time
	broker, self, total time.Duration
}

// startCPU starts measuring a phase in which the broker is process pid.
func startCPU(pid int) cpuMeter {
	m := cpuMeter{pid: pid, start: time.Now()}
	m.broker, _ = readCPU(pid)
	m.self, _ = readCPU(0)
	m.total, _ = readBusy()
	return m
}

// stop ends the phase. It fails if the broker's CPU time cannot be read
// (the broker has exited).
func (m cpuMeter) stop() (phaseCPU, error) {
	wall := time.Since(m.start)
	broker, err := readCPU(m.pid)
	if err != nil {
		return phaseCPU{}, fmt.Errorf("broker cpu: %w", err)
	}
	self, _ := readCPU(0)
	total, _ := readBusy()
	c := phaseCPU{BrokerCPU: broker - m.broker, ClientCPU: self - m.self, Wall: wall}
	c.OtherCPU = max(total-m.total-c.BrokerCPU-c.ClientCPU, 0)
	return c, nil
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
