package gatewaybench

import (
	"fmt"
	"time"

	"github.com/factorywire/factorywire/internal/procstat"
)

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
		m.procs[i], _ = procstat.CPU(pid)
	}
	m.busy, _ = procstat.Busy()
	m.self = procstat.SelfCPU()
	m.start = time.Now()
	return m
}

// stop ends the phase. It fails if a child's CPU time cannot be read (the
// child has exited).
func (m meter) stop() (usage, error) {
	u := usage{Wall: time.Since(m.start), Self: procstat.SelfCPU() - m.self, Procs: make([]time.Duration, len(m.pids))}
	busy, _ := procstat.Busy()
	measured := u.Self
	for i, pid := range m.pids {
		d, err := procstat.CPU(pid)
		if err != nil {
			return usage{}, fmt.Errorf("cpu of child %d: %w", pid, err)
		}
		u.Procs[i] = d - m.procs[i]
		measured += u.Procs[i]
	}
	u.Other = max(busy-m.busy-measured, 0)
	return u, nil
}
