package modbus

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/devices/simulator"
)

// Device quirks: ConnConfig.PauseBetweenRequests, PauseAfterConnect and
// CloseAfterScan, against the simulator (and a fake RTU device), which
// records on which connection and when each request arrived.

// requestLog is a simulator.Config.OnRequest recording every request.
type requestLog struct {
	mu   sync.Mutex
	reqs []simulator.Request
}

func (l *requestLog) add(r simulator.Request) {
	l.mu.Lock()
	l.reqs = append(l.reqs, r)
	l.mu.Unlock()
}

func (l *requestLog) get() []simulator.Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]simulator.Request(nil), l.reqs...)
}

// pollScans runs a Poller over devs until it has emitted n samples, then
// stops it and returns them. Emit stops the Poller itself, so no poll
// runs after the n-th sample.
func pollScans(t *testing.T, devs []Device, n int) []devices.Sample {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var samples []devices.Sample // appended by the one connection's goroutine
	emit := func(_ context.Context, batch []devices.Sample) error {
		samples = append(samples, batch...)
		if len(samples) >= n {
			cancel()
		}
		return nil
	}
	p, err := NewPoller(PollerConfig{}, devs, emit, WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		cancel()
		<-done
		t.Fatalf("%d samples not emitted within 30s; got %d", n, len(samples))
	}
	return samples
}

// checkSeqs checks that the samples of each device carry seq 0, 1, 2...
// and no errors.
func checkSeqs(t *testing.T, samples []devices.Sample) {
	t.Helper()
	next := map[string]uint64{}
	for _, s := range samples {
		if s.Seq != next[s.Device] {
			t.Errorf("device %s: seq %d, want %d", s.Device, s.Seq, next[s.Device])
		}
		next[s.Device] = s.Seq + 1
		if len(s.Errors) != 0 {
			t.Errorf("device %s seq %d: errors %v", s.Device, s.Seq, s.Errors)
		}
	}
}

// TestPollerCloseAfterScan: with close_after_scan every scan has a
// connection of its own, which carries that scan's requests and nothing
// else, and every sample still arrives; without it one connection serves
// every scan.
func TestPollerCloseAfterScan(t *testing.T) {
	const scans = 3
	// The plan of pressYAML: coil 0; holding 0-1; holding 150; input 10.
	planFunctions := []uint8{1, 3, 3, 4}
	for _, closeAfter := range []bool{false, true} {
		t.Run(fmt.Sprintf("close_after_scan=%v", closeAfter), func(t *testing.T) {
			var log requestLog
			s := newSim(t, simulator.Config{OnRequest: log.add})
			addUnit(t, s, 3)
			conn := newConn(t, ConnConfig{Address: s.Addr().String(), CloseAfterScan: closeAfter})
			// One device: each poll is a scan of its own (the next due
			// time is 500ms later).
			samples := pollScans(t, []Device{{
				ID: "press-07", Factory: "plant-a", Class: parseClass(t, pressYAML), Conn: conn, Unit: 3,
				Schedule: Schedule{Interval: 500 * time.Millisecond},
			}}, scans)
			if len(samples) != scans {
				t.Fatalf("%d samples, want %d", len(samples), scans)
			}
			checkSeqs(t, samples)
			for _, smp := range samples {
				checkPress(t, smp, 3)
			}

			wantConns, wantCloses := uint64(1), uint64(0)
			if closeAfter {
				wantConns, wantCloses = scans, scans
			}
			if got := s.Stats().Connections; got != wantConns {
				t.Errorf("the simulator accepted %d connections in %d scans, want %d", got, scans, wantConns)
			}
			st := conn.Stats()
			if st.Connects != wantConns || st.ScanCloses != wantCloses || st.Disconnects != 0 {
				t.Errorf("conn stats: %d connects, %d closed after a scan, %d after an error; want %d, %d, 0",
					st.Connects, st.ScanCloses, st.Disconnects, wantConns, wantCloses)
			}
			reqs := log.get()
			if len(reqs) != scans*len(planFunctions) {
				t.Fatalf("%d requests, want %d: %+v", len(reqs), scans*len(planFunctions), reqs)
			}
			for i, r := range reqs {
				// Scan k's requests all come on connection k (or 1).
				wantConn := uint64(1)
				if closeAfter {
					wantConn = uint64(i/len(planFunctions) + 1)
				}
				if r.Conn != wantConn || r.Unit != 3 || r.Function != planFunctions[i%len(planFunctions)] {
					t.Errorf("request %d: connection %d, unit %d, function %d; want connection %d, unit 3, function %d",
						i, r.Conn, r.Unit, r.Function, wantConn, planFunctions[i%len(planFunctions)])
				}
			}
		})
	}
}

// TestPollerPauseBetweenRequests: two devices of four reads each share a
// connection; with pause_between_requests every request arrives at least
// the pause after the one before it on that connection, and the scans
// still deliver every sample. The bound is one the Conn enforces (it
// waits the pause after each reply before it sends), not a measure of
// speed.
func TestPollerPauseBetweenRequests(t *testing.T) {
	const pause = 25 * time.Millisecond
	var log requestLog
	s := newSim(t, simulator.Config{OnRequest: log.add})
	addUnit(t, s, 3)
	addUnit(t, s, 4)
	conn := newConn(t, ConnConfig{Address: s.Addr().String(), PauseBetweenRequests: pause})
	class := parseClass(t, pressYAML)
	devs := []Device{
		{ID: "press-a", Factory: "plant-a", Class: class, Conn: conn, Unit: 3, Schedule: Schedule{Interval: 500 * time.Millisecond}},
		{ID: "press-b", Factory: "plant-a", Class: class, Conn: conn, Unit: 4, Schedule: Schedule{Interval: 500 * time.Millisecond}},
	}
	samples := pollScans(t, devs, 2*len(devs))
	checkSeqs(t, samples)
	for _, smp := range samples {
		checkPress(t, smp, map[string]uint8{"press-a": 3, "press-b": 4}[smp.Device])
	}
	reqs := log.get()
	if len(reqs) < 2*2*4 {
		t.Fatalf("%d requests, want at least 16", len(reqs))
	}
	for i := 1; i < len(reqs); i++ {
		if reqs[i].Conn != reqs[i-1].Conn {
			t.Fatalf("request %d on connection %d, request %d on %d: want one connection", i-1, reqs[i-1].Conn, i, reqs[i].Conn)
		}
		if gap := reqs[i].Received.Sub(reqs[i-1].Received); gap < pause {
			t.Errorf("request %d (unit %d) arrived %v after request %d (unit %d), want at least %v",
				i, reqs[i].Unit, gap, i-1, reqs[i-1].Unit, pause)
		}
	}
	// A request's round trip starts after its pause: the pauses are not
	// in the round trips the Conn reports. Counted in, they would make
	// three of every four at least the pause; the simulator on loopback
	// answers in far less than half of it.
	if st := conn.Stats(); st.Replies == 0 || st.RoundTripTotal >= time.Duration(st.Replies)*pause/2 {
		t.Errorf("round trips %v in all over %d replies, want less than half the pause (%v) each on average",
			st.RoundTripTotal, st.Replies, pause)
	}
}

// TestConnPauseAfterConnect: the first request on a connection, a new one
// after each end of a scan with close_after_scan, arrives at least
// pause_after_connect after the Read began (the connect happens within
// the Read, the pause after it).
func TestConnPauseAfterConnect(t *testing.T) {
	const pause = 50 * time.Millisecond
	var log requestLog
	s := newSim(t, simulator.Config{OnRequest: log.add})
	addUnit(t, s, 3)
	c := newConn(t, ConnConfig{Address: s.Addr().String(), PauseAfterConnect: pause, CloseAfterScan: true})
	for scan := range 2 {
		start := time.Now()
		got, err := c.Read(readCtx(t), 3, devices.HoldingRegisters, 0, 2)
		if err != nil || string(got) != string(wantRegs(3, 0, 2)) {
			t.Fatalf("scan %d: read % x, %v", scan, got, err)
		}
		reqs := log.get()
		r := reqs[len(reqs)-1]
		if r.Conn != uint64(scan+1) {
			t.Errorf("scan %d: request on connection %d, want %d", scan, r.Conn, scan+1)
		}
		if gap := r.Received.Sub(start); gap < pause {
			t.Errorf("scan %d: request arrived %v after the Read began, want at least %v", scan, gap, pause)
		}
		c.endScan()
	}
	if st := c.Stats(); st.Connects != 2 || st.ScanCloses != 2 || s.Stats().Connections != 2 {
		t.Errorf("%d connects, %d closed after a scan, %d accepted; want 2 each", st.Connects, st.ScanCloses, s.Stats().Connections)
	}
	c.Close()
	c.endScan() // after Close: returns at once
	if _, err := c.Read(readCtx(t), 3, devices.HoldingRegisters, 0, 2); KindOf(err) != KindClosed {
		t.Errorf("Read after Close: %v, want ErrClosed", err)
	}
}

// TestConnPauseCanceled: a Read waiting out the pause returns when its
// context ends, without sending. (The deadline ends the wait: the Read has
// the turn at once, nothing else uses the Conn.)
func TestConnPauseCanceled(t *testing.T) {
	var log requestLog
	s := newSim(t, simulator.Config{OnRequest: log.add})
	addUnit(t, s, 3)
	c := newConn(t, ConnConfig{Address: s.Addr().String(), PauseBetweenRequests: MaxQuirkPause})
	if _, err := c.Read(readCtx(t), 3, devices.HoldingRegisters, 0, 2); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(ctx, 3, devices.HoldingRegisters, 0, 2)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || KindOf(err) != KindCanceled {
			t.Errorf("canceled Read: %v, want a context error", err)
		}
	case <-time.After(MaxQuirkPause / 2):
		t.Fatal("a canceled Read still waits out the pause")
	}
	if n := len(log.get()); n != 1 {
		t.Errorf("the simulator received %d requests, want 1 (the canceled one not sent)", n)
	}
}

// TestRTUPauseBetweenRequests: on a serial line the pause holds between
// the requests of every caller and unit.
func TestRTUPauseBetweenRequests(t *testing.T) {
	const pause = 25 * time.Millisecond
	client, device := ptyPair(t)
	var (
		mu    sync.Mutex
		times []time.Time
	)
	startFakeRTU(t, device, func(rtuRequest) rtuAction {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		return rtuAction{}
	})
	c := newConn(t, ConnConfig{Transport: RTU, Address: client, BaudRate: 115200, Timeout: time.Second, PauseBetweenRequests: pause})
	var wg sync.WaitGroup
	for g := range 3 {
		wg.Go(func() {
			u := uint8(1 + g)
			for i := range 3 {
				got, err := c.Read(readCtx(t), u, devices.HoldingRegisters, uint16(i), 2)
				if err != nil || string(got) != string(wantRegs(u, i, 2)) {
					t.Errorf("unit %d address %d: % x, %v", u, i, got, err)
					return
				}
			}
		})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(times) != 9 {
		t.Fatalf("the device received %d requests, want 9", len(times))
	}
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap < pause {
			t.Errorf("request %d arrived %v after the one before, want at least %v", i, gap, pause)
		}
	}
}
