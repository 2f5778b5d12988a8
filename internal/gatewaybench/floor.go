package gatewaybench

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/devices/modbus"
)

// floorResult is one floor or poller run: requests and polls this process
// completed in the window, and the CPU it and the simulator used.
type floorResult struct {
	Mode     string // modeFloor or modePoller
	Conns    int
	Run      int
	Requests uint64
	Polls    uint64 // polls completed (the floor: plans run; the poller: Poller.Health's polls)
	Failed   uint64 // the poller's polls without a sample, over the whole run
	Overruns uint64 // the poller's polls after which a due time had passed, over the whole run
	Usage    usage  // Procs[0] is the simulator
	Err      string
}

func (r floorResult) pollsPerSec() float64 { return float64(r.Polls) / r.Usage.Wall.Seconds() }
func (r floorResult) reqPerSec() float64   { return float64(r.Requests) / r.Usage.Wall.Seconds() }
func (r floorResult) cores() float64       { return r.Usage.cores(r.Usage.Self) }
func (r floorResult) pollsPerCPUSec() float64 {
	return perCPUSecond(r.Polls, r.Usage.Self)
}
func (r floorResult) reqPerCPUSec() float64 { return perCPUSecond(r.Requests, r.Usage.Self) }

// simMicrosPerRequest is the simulator's CPU per request it answered.
func (r floorResult) simMicrosPerRequest() float64 {
	if r.Requests == 0 {
		return 0
	}
	return float64(r.Usage.Procs[0].Microseconds()) / float64(r.Requests)
}

func perCPUSecond(n uint64, cpu time.Duration) float64 {
	if cpu <= 0 {
		return 0
	}
	return float64(n) / cpu.Seconds()
}

// counters are what the loops of a floor or poller run have done.
type counters struct {
	requests, polls atomic.Uint64
}

// runFloor measures one floor or poller run against the simulator sim,
// whose units 1..units serve class.
func (b *bench) runFloor(ctx context.Context, mode string, conns, run int, sim *proc, units int) floorResult {
	r := floorResult{Mode: mode, Conns: conns, Run: run}
	var (
		cnt     counters
		stopped atomic.Bool
		wg      sync.WaitGroup
		errMu   sync.Mutex
		loopErr error
	)
	fail := func(err error) {
		errMu.Lock()
		if loopErr == nil {
			loopErr = err
		}
		errMu.Unlock()
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		snapshot func() (requests, polls uint64)
		finish   func()
	)
	switch mode {
	case modeFloor:
		for i := range conns {
			nc, err := net.Dial("tcp", sim.Addr)
			if err != nil {
				r.Err = err.Error()
				return r
			}
			defer nc.Close()
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := floorLoop(nc.(*net.TCPConn), b.class.Plan, units, i, &stopped, &cnt); err != nil {
					fail(err)
				}
			}()
		}
		snapshot = func() (uint64, uint64) { return cnt.requests.Load(), cnt.polls.Load() }
		finish = func() { stopped.Store(true); wg.Wait() }
	case modePoller:
		p, cs, err := newFloorPoller(b.class, sim.Addr, conns, b.cfg.PollerDevices, units)
		if err != nil {
			r.Err = err.Error()
			return r
		}
		defer func() {
			for _, c := range cs {
				c.Close()
			}
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Run(runCtx); err != nil {
				fail(err)
			}
		}()
		snapshot = func() (uint64, uint64) {
			var n, polls uint64
			for _, c := range cs {
				n += c.Stats().Requests
			}
			// Polls, not samples emitted: the poller emits a scan's
			// samples in batches, which the window's edges would cut.
			for _, h := range p.Health() {
				polls += h.Polls
			}
			return n, polls
		}
		finish = func() {
			cancel()
			wg.Wait()
			for _, h := range p.Health() {
				r.Failed += h.Failures
				r.Overruns += h.Overruns
			}
		}
	}

	if !sleepCtx(ctx, b.cfg.FloorWarmup) {
		finish()
		r.Err = ctx.Err().Error()
		return r
	}
	stopProfile := b.profileSelf(fmt.Sprintf("%s-c%d.pprof", mode, conns), run)
	req0, polls0 := snapshot()
	m := startMeter(sim.Pid())
	ok := sleepCtx(ctx, b.cfg.FloorDuration)
	u, err := m.stop()
	req1, polls1 := snapshot()
	stopProfile()
	finish()
	switch {
	case !ok:
		r.Err = ctx.Err().Error()
	case err != nil:
		r.Err = err.Error()
	case loopErr != nil:
		r.Err = loopErr.Error()
	}
	r.Usage, r.Requests, r.Polls = u, req1-req0, polls1-polls0
	return r
}

// profileSelf starts a CPU profile of this process into -cpuprofile's
// directory during the first run, and returns the function that ends it.
func (b *bench) profileSelf(name string, run int) func() {
	if b.cfg.CPUProfileDir == "" || run != 1 {
		return func() {}
	}
	f, err := os.Create(filepath.Join(b.cfg.CPUProfileDir, name))
	if err != nil {
		logf(b.log, "cpuprofile: %v", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		logf(b.log, "cpuprofile: %v", err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// floorLoop is the loopback floor on one connection: the requests of
// plan, for units 1..units in turn, as raw Modbus TCP frames, each written
// and its reply read whole before the next is sent (no pipelining, as a
// poller works). A reply is checked only for its transaction id, function
// code and length. It returns when stop is set, after a whole poll.
func floorLoop(nc *net.TCPConn, plan devices.Plan, units, conn int, stop *atomic.Bool, cnt *counters) error {
	type request struct {
		frame []byte
		reply int // bytes of the reply ADU
	}
	var reqs [][]request
	for u := 1; u <= units; u++ {
		var poll []request
		for _, r := range plan.Reads {
			f := make([]byte, 12)
			binary.BigEndian.PutUint16(f[4:], 6) // length: unit, function, address, quantity
			f[6] = byte(u)
			f[7] = r.Table.ReadFunction()
			binary.BigEndian.PutUint16(f[8:], r.Address)
			binary.BigEndian.PutUint16(f[10:], r.Quantity)
			data := 2 * int(r.Quantity)
			if r.Table == devices.Coils || r.Table == devices.DiscreteInputs {
				data = (int(r.Quantity) + 7) / 8
			}
			poll = append(poll, request{frame: f, reply: 9 + data})
		}
		reqs = append(reqs, poll)
	}
	var buf [260]byte
	txid := uint16(conn << 12)
	for {
		for _, poll := range reqs {
			if stop.Load() {
				return nil
			}
			for _, rq := range poll {
				txid++
				binary.BigEndian.PutUint16(rq.frame, txid)
				if _, err := nc.Write(rq.frame); err != nil {
					return fmt.Errorf("floor: write: %w", err)
				}
				n := 0
				for n < rq.reply {
					m, err := nc.Read(buf[n:])
					if err != nil {
						return fmt.Errorf("floor: read: %w", err)
					}
					n += m
				}
				if n != rq.reply || binary.BigEndian.Uint16(buf[:]) != txid || buf[7] != rq.frame[7] {
					return fmt.Errorf("floor: unexpected reply % x to request % x", buf[:n], rq.frame)
				}
				cnt.requests.Add(1)
			}
			cnt.polls.Add(1)
		}
	}
}

// newFloorPoller builds our poller over conns connections to addr, each
// with perConn devices of class on units 1..units over and over, every
// 100 ms (modbus.MinInterval): more than a connection can poll, so every
// connection polls flat out (and counts overruns). Emit drops the samples.
func newFloorPoller(class *devices.Class, addr string, conns, perConn, units int) (*modbus.Poller, []*modbus.Conn, error) {
	var (
		cs   []*modbus.Conn
		devs []modbus.Device
	)
	for i := range conns {
		c, err := modbus.NewConn(modbus.ConnConfig{Name: connName(i), Address: addr})
		if err != nil {
			for _, c := range cs {
				c.Close()
			}
			return nil, nil, err
		}
		cs = append(cs, c)
		for j := range perConn {
			devs = append(devs, modbus.Device{
				ID: fmt.Sprintf("poller-%03d-%05d", i, j), Factory: "bench", Class: class, Conn: c,
				Unit: uint8(1 + j%units), Schedule: modbus.Schedule{Interval: modbus.MinInterval},
			})
		}
	}
	p, err := modbus.NewPoller(modbus.PollerConfig{}, devs, func(context.Context, []devices.Sample) error { return nil }, modbus.WithValues())
	if err != nil {
		for _, c := range cs {
			c.Close()
		}
		return nil, nil, err
	}
	return p, cs, nil
}

// sleepCtx sleeps for d and reports whether ctx is still alive.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
