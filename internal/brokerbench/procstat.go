package brokerbench

import (
	"fmt"
	"time"

	"github.com/factorywire/factorywire/internal/procstat"
)

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
	m.broker, _ = procstat.CPU(pid)
	m.self, _ = procstat.CPU(0)
	m.total, _ = procstat.Busy()
	return m
}

// stop ends the phase. It fails if the broker's CPU time cannot be read
// (the broker has exited).
func (m cpuMeter) stop() (phaseCPU, error) {
	wall := time.Since(m.start)
	broker, err := procstat.CPU(m.pid)
	if err != nil {
		return phaseCPU{}, fmt.Errorf("broker cpu: %w", err)
	}
	self, _ := procstat.CPU(0)
	total, _ := procstat.Busy()
	c := phaseCPU{BrokerCPU: broker - m.broker, ClientCPU: self - m.self, Wall: wall}
	c.OtherCPU = max(total-m.total-c.BrokerCPU-c.ClientCPU, 0)
	return c, nil
}
