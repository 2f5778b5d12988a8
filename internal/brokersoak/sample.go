package brokersoak

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/factorywire/factorywire/internal/procstat"
)

// sampleInterval is how often the broker's RSS and open files are read.
const sampleInterval = time.Second

// Sample is one reading of the broker process.
type Sample struct {
	At      time.Duration // since the broker started
	RSS     int64         // bytes
	Files   int           // entries of /proc/PID/fd
	Sockets int           // of which sockets
}

// Peaks are the largest readings of a run, each at its own time.
type Peaks struct {
	RSS, Files, Sockets Sample
	// Others is the reading with the most open files other than sockets:
	// the data directory's.
	Others  Sample
	Samples int
	Errors  int // readings that failed (the broker had exited, ...)
}

// sampler reads the broker's RSS and open files every sampleInterval and
// keeps the peaks. Run owns its goroutine; Peaks and Last may be called
// concurrently with it.
type sampler struct {
	pid   int
	start time.Time

	mu    sync.Mutex
	peaks Peaks
	last  Sample
}

func newSampler(pid int) *sampler { return &sampler{pid: pid, start: time.Now()} }

// run samples until ctx ends.
func (s *sampler) run(ctx context.Context) {
	t := time.NewTicker(sampleInterval)
	defer t.Stop()
	for {
		s.sample()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *sampler) sample() {
	smp, err := readSample(s.pid)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.peaks.Errors++
		return
	}
	smp.At = time.Since(s.start).Round(time.Second)
	s.last = smp
	s.peaks.Samples++
	if smp.RSS > s.peaks.RSS.RSS {
		s.peaks.RSS = smp
	}
	if smp.Files > s.peaks.Files.Files {
		s.peaks.Files = smp
	}
	if smp.Sockets > s.peaks.Sockets.Sockets {
		s.peaks.Sockets = smp
	}
	if smp.Files-smp.Sockets > s.peaks.Others.Files-s.peaks.Others.Sockets {
		s.peaks.Others = smp
	}
}

func (s *sampler) Peaks() Peaks {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peaks
}

func (s *sampler) Last() Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// readSample reads process pid's RSS and its open file descriptors.
func readSample(pid int) (Sample, error) {
	mem, err := procstat.ReadMem(pid)
	if err != nil {
		return Sample{}, err
	}
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return Sample{}, err
	}
	smp := Sample{RSS: mem.RSS, Files: len(entries)}
	for _, e := range entries {
		// A descriptor closed since ReadDir fails Readlink: skip it.
		if target, err := os.Readlink(dir + "/" + e.Name()); err == nil && strings.HasPrefix(target, "socket:") {
			smp.Sockets++
		}
	}
	return smp, nil
}
