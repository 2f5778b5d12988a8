package modbus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/devices/simulator"
)

// pressYAML is the class the poller tests read from addUnit's units. Its
// plan has four reads, in this order: coil 0; holding 0-1; holding 150;
// input 10.
const pressYAML = `
class: press
fields:
  - {name: running, table: coil, address: 0, type: bool}
  - {name: pressure, table: holding_register, address: 0, type: uint16, unit: bar}
  - {name: setpoint, table: holding_register, address: 1, type: uint16}
  - {name: far, table: holding_register, address: 150, type: uint16}
  - {name: temp, table: input_register, address: 10, type: uint16}
`

// beyondYAML adds a field past the end of addUnit's 200 holding
// registers: its read fails with exception 2.
const beyondYAML = pressYAML + `  - {name: beyond, table: holding_register, address: 250, type: uint16}
`

func parseClass(t testing.TB, src string) *devices.Class {
	t.Helper()
	c, err := devices.Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// checkPress checks the fields of a press sample read from unit u.
func checkPress(t testing.TB, s devices.Sample, u uint8, skip ...string) {
	t.Helper()
	want := map[string]devices.Value{
		"running":  devices.BoolValue(true),
		"pressure": devices.Uint64Value(uint64(regValue(u, 0))),
		"setpoint": devices.Uint64Value(uint64(regValue(u, 1))),
		"far":      devices.Uint64Value(uint64(regValue(u, 150))),
		"temp":     devices.Uint64Value(uint64(regValue(u, 10) + 500)),
	}
	for _, name := range skip {
		delete(want, name)
	}
	for name, w := range want {
		if got, ok := s.Fields[name]; !ok || !got.Equal(w) {
			t.Errorf("sample seq %d: field %s = %v (present %v), want %v; errors %v", s.Seq, name, got, ok, w, s.Errors)
		}
	}
}

// collector is an EmitFunc recording samples per device.
type collector struct {
	mu      sync.Mutex
	samples map[string][]devices.Sample
}

func newCollector() *collector { return &collector{samples: map[string][]devices.Sample{}} }

func (c *collector) emit(_ context.Context, samples []devices.Sample) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range samples {
		c.samples[s.Device] = append(c.samples[s.Device], s)
	}
	return nil
}

func (c *collector) get(dev string) []devices.Sample {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]devices.Sample(nil), c.samples[dev]...)
}

// runPoller runs p until the test ends, and checks that Run returned nil.
func runPoller(t *testing.T, p *Poller) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func health(p *Poller, id string) DeviceHealth {
	for _, h := range p.Health() {
		if h.ID == id {
			return h
		}
	}
	return DeviceHealth{}
}

func TestPollerSamples(t *testing.T) {
	s := newSim(t, simulator.Config{})
	addUnit(t, s, 3)
	conn := newConn(t, ConnConfig{Address: s.Addr().String()})
	// The poller's clock runs a day ahead: sample times come from it.
	const shift = 24 * time.Hour
	clock := func() time.Time { return time.Now().Add(shift) }
	col := newCollector()
	tags := map[string]string{"line": "line-3"}
	class := parseClass(t, pressYAML)
	p, err := NewPoller(PollerConfig{}, []Device{{
		ID: "press-07", Factory: "plant-a", Class: class, Tags: tags, Conn: conn, Unit: 3,
		Schedule: Schedule{Interval: 100 * time.Millisecond}, Seq: 41,
	}}, col.emit, WithClock(clock), WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	start := clock()
	runPoller(t, p)
	eventually(t, "3 samples", func() bool { return len(col.get("press-07")) >= 3 })
	for i, smp := range col.get("press-07")[:3] {
		if smp.Seq != uint64(41+i) {
			t.Errorf("sample %d: seq %d, want %d", i, smp.Seq, 41+i)
		}
		if smp.Factory != "plant-a" || smp.Device != "press-07" || smp.Class != "press" {
			t.Errorf("sample %d: identity %q %q %q", i, smp.Factory, smp.Device, smp.Class)
		}
		// The device's tags and the class's units, shared, not copied.
		if fmt.Sprintf("%p %p", smp.Tags, smp.Units) != fmt.Sprintf("%p %p", tags, class.Units) || smp.Units["pressure"] != "bar" {
			t.Errorf("sample %d: tags %v units %v, want the device's %v and the class's %v", i, smp.Tags, smp.Units, tags, class.Units)
		}
		if smp.Time.Before(start) || smp.Time.After(clock()) {
			t.Errorf("sample %d: time %v, not from the poller's clock (started at %v)", i, smp.Time, start)
		}
		if len(smp.Errors) != 0 {
			t.Errorf("sample %d: errors %v", i, smp.Errors)
		}
		checkPress(t, smp, 3)
	}
	// The health counters follow the emit (the poll counts a sample once
	// emit returned), so they may trail the collector by one poll.
	eventually(t, "health to count 3 samples", func() bool { return health(p, "press-07").Samples >= 3 })
	h := health(p, "press-07")
	if h.Samples < 3 || h.LastSuccess.IsZero() || h.ConsecutiveFailures != 0 || h.NextSeq < 44 || h.Conn != conn.Name() || h.Schedule != "every 100ms" {
		t.Errorf("health %+v", h)
	}
}

// TestPollerEmissionRule: exception 2 fails that read's fields only; a
// connection failure stops the poll and fails the later reads' fields; a
// poll in which no read succeeded emits no sample.
func TestPollerEmissionRule(t *testing.T) {
	s := newSim(t, simulator.Config{})
	u := addUnit(t, s, 1)
	addUnit(t, s, 2)
	conn := newConn(t, ConnConfig{Address: s.Addr().String(), Timeout: 300 * time.Millisecond})
	col := newCollector()
	every := Schedule{Interval: 100 * time.Millisecond}
	p, err := NewPoller(PollerConfig{}, []Device{
		{ID: "beyond", Factory: "plant-a", Class: parseClass(t, beyondYAML), Conn: conn, Unit: 2, Schedule: every},
		{ID: "partial", Factory: "plant-a", Class: parseClass(t, pressYAML), Conn: conn, Unit: 1, Schedule: every},
		{ID: "absent", Factory: "plant-a", Class: parseClass(t, pressYAML), Conn: conn, Unit: 9, Schedule: every},
	}, col.emit, WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	// Unit 1 never answers the read of holding register 150, the third
	// of the plan's four reads.
	if err := u.SetFaults(simulator.Fault{Kind: simulator.FaultNoReply, Function: 3, Address: 150, Count: 1}); err != nil {
		t.Fatal(err)
	}
	runPoller(t, p)
	eventually(t, "samples of beyond and partial, 3 failures of absent", func() bool {
		return len(col.get("beyond")) >= 2 && len(col.get("partial")) >= 2 && health(p, "absent").Failures >= 3
	})

	t.Run("exception 2", func(t *testing.T) {
		smp := col.get("beyond")[0]
		checkPress(t, smp, 2)
		if msg := smp.Errors["beyond"]; !strings.Contains(msg, "illegal data address") {
			t.Errorf("errors %v, want beyond: illegal data address", smp.Errors)
		}
		if len(smp.Errors) != 1 {
			t.Errorf("errors %v, want only beyond", smp.Errors)
		}
	})
	t.Run("connection failure mid-poll", func(t *testing.T) {
		smp := col.get("partial")[0]
		checkPress(t, smp, 1, "far", "temp")
		if !strings.Contains(smp.Errors["far"], "timed out") || !strings.HasPrefix(smp.Errors["temp"], "not read: ") {
			t.Errorf("errors %q, want far timed out, temp not read", smp.Errors)
		}
		if h := health(p, "partial"); h.ConsecutiveFailures != 0 || !strings.Contains(h.LastError, "timed out") {
			t.Errorf("health %+v: a partial sample is a success that keeps its error", h)
		}
	})
	t.Run("no read succeeded", func(t *testing.T) {
		if n := len(col.get("absent")); n != 0 {
			t.Errorf("%d samples of a unit that is not there", n)
		}
		h := health(p, "absent")
		if h.Samples != 0 || h.NextSeq != 0 || !strings.Contains(h.LastError, "gateway target device failed to respond") {
			t.Errorf("health %+v", h)
		}
	})
}

// TestPollerPhaseSpreading: the devices of one connection with the same
// interval share a due time (one scan); connections start their scans in
// groups of at most ScanGroup, evenly spread over the interval, and keep
// their phases in another Poller with the same connections.
func TestPollerPhaseSpreading(t *testing.T) {
	const conns, perConn, interval = 1000, 3, time.Second
	class := parseClass(t, pressYAML)
	addr := closedAddr(t)
	var devs []Device
	for c := range conns {
		conn := newConn(t, ConnConfig{Name: fmt.Sprintf("line-%04d", c), Address: addr})
		for u := range perConn {
			devs = append(devs, Device{
				ID: fmt.Sprintf("dev-%04d-%d", c, u), Factory: "plant-a", Class: class, Conn: conn,
				Unit: uint8(u + 1), Schedule: Schedule{Interval: interval},
			})
		}
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	dueTimes := func() map[string]time.Time { // connection: due time of its scan
		t.Helper()
		p, err := NewPoller(PollerConfig{}, devs, newCollector().emit, WithClock(clock))
		if err != nil {
			t.Fatal(err)
		}
		due := map[string]time.Time{}
		for _, h := range p.Health() {
			if off := h.NextDue.Sub(now); off <= 0 || off > interval {
				t.Fatalf("%s: first poll %v after start, want within (0, %v]", h.ID, off, interval)
			}
			if d, ok := due[h.Conn]; !ok {
				due[h.Conn] = h.NextDue
			} else if !d.Equal(h.NextDue) {
				t.Fatalf("%s: due %v, another device of %s is due %v: not one scan", h.ID, h.NextDue, h.Conn, d)
			}
		}
		return due
	}
	due := dueTimes()
	if len(due) != conns {
		t.Fatalf("%d connections with due times, want %d", len(due), conns)
	}
	// 125 groups of 8, 8 ms apart.
	const groups = (conns + ScanGroup - 1) / ScanGroup
	starts := map[time.Duration]int{}
	for _, d := range due {
		starts[time.Duration(d.UnixNano())%interval]++
	}
	if len(starts) != groups {
		t.Errorf("scans start at %d moments of the interval, want %d", len(starts), groups)
	}
	for off, n := range starts {
		if n > ScanGroup {
			t.Errorf("%d connections start their scans at %v, more than %d", n, off, ScanGroup)
		}
		if off%(interval/groups) != 0 {
			t.Errorf("scans start at %v, off the grid of %v", off, interval/groups)
		}
	}
	// The phase is stable: another poller, later, keeps each connection's
	// offset within the interval.
	now = now.Add(7*time.Hour + 123*time.Millisecond)
	for conn, d := range dueTimes() {
		if d.Sub(due[conn])%interval != 0 {
			t.Errorf("%s: phase changed between runs: due %v, before %v", conn, d, due[conn])
		}
	}
}

// TestScanPhases: a few connections start together; many are spread in
// groups of ScanGroup; a name given twice counts once.
func TestScanPhases(t *testing.T) {
	few := ScanPhases([]string{"a", "b", "c", "a", "d", "e"}, time.Second)
	if len(few) != 5 {
		t.Fatalf("%d phases for 5 connections: %v", len(few), few)
	}
	for name, ph := range few {
		if ph != 0 {
			t.Errorf("%s: phase %v; 5 connections are one group", name, ph)
		}
	}
	var names []string
	for i := range 20 {
		names = append(names, fmt.Sprintf("conn-%d", i))
	}
	ph := ScanPhases(names, 900*time.Millisecond)
	count := map[time.Duration]int{}
	for _, p := range ph {
		count[p]++
	}
	// 20 = 8 + 8 + 4, at 0, 300 and 600 ms.
	want := map[time.Duration]int{0: 8, 300 * time.Millisecond: 8, 600 * time.Millisecond: 4}
	if fmt.Sprint(count) != fmt.Sprint(want) {
		t.Errorf("connections per phase %v, want %v", count, want)
	}
	// The order does not depend on the order given.
	slices.Reverse(names)
	if again := ScanPhases(names, 900*time.Millisecond); fmt.Sprint(again) != fmt.Sprint(ph) {
		t.Errorf("phases depend on the order of the names: %v, then %v", ph, again)
	}
}

// TestPollerScanOrder: the devices of one connection are polled as a scan,
// one after another in id order, scan after scan.
func TestPollerScanOrder(t *testing.T) {
	s := newSim(t, simulator.Config{})
	conn := newConn(t, ConnConfig{Address: s.Addr().String()})
	class := parseClass(t, pressYAML)
	ids := []string{"press-a", "press-b", "press-c", "press-d", "press-e"}
	var devs []Device
	// Listed out of order, on units in another order again: the scan
	// follows the ids.
	for i, u := range []int{4, 1, 5, 2, 3} {
		devs = append(devs, Device{ID: ids[u-1], Factory: "plant-a", Class: class, Conn: conn, Unit: uint8(10 + i), Schedule: Schedule{Interval: time.Second}})
		addUnit(t, s, uint8(10+i))
	}
	var (
		mu    sync.Mutex
		order []string
	)
	var batches []int
	emit := func(_ context.Context, samples []devices.Sample) error {
		mu.Lock()
		defer mu.Unlock()
		for _, smp := range samples {
			order = append(order, smp.Device)
		}
		batches = append(batches, len(samples))
		return nil
	}
	p, err := NewPoller(PollerConfig{}, devs, emit, WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	runPoller(t, p)
	eventually(t, "three scans", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(order) >= 3*len(ids)
	})
	mu.Lock()
	defer mu.Unlock()
	for i, id := range order[:3*len(ids)] {
		if want := ids[i%len(ids)]; id != want {
			t.Fatalf("emission %d: %s, want %s (order %v)", i, id, want, order)
		}
	}
	// A scan's samples are emitted together, unless the scan outlasted
	// EmitDelay (a loaded machine): then in more calls, never fewer.
	for i, n := range batches[:3] {
		if n > len(ids) {
			t.Errorf("emit %d carried %d samples, more than one scan's %d (batches %v)", i, n, len(ids), batches)
		}
	}
	if batches[0] != len(ids) && batches[1] != len(ids) && batches[2] != len(ids) {
		t.Errorf("no scan of the first three emitted as one batch: %v", batches)
	}
}

// TestPollerBackoffSchedule checks the due times of a failing device.
func TestPollerBackoffSchedule(t *testing.T) {
	p := &Poller{cfg: PollerConfig{FailureThreshold: 3, MaxBackoff: time.Second}}
	sched := intervalSchedule{every: 100 * time.Millisecond}
	due := time.Unix(1000, 0)
	for _, tc := range []struct {
		failures int
		end      time.Duration // when the poll ended, after due
		wait     time.Duration // next due, after due
		overrun  bool
	}{
		{0, time.Millisecond, 100 * time.Millisecond, false},
		{1, time.Millisecond, 100 * time.Millisecond, false},
		{2, time.Millisecond, 100 * time.Millisecond, false},
		{3, time.Millisecond, 200 * time.Millisecond, false},
		{4, time.Millisecond, 400 * time.Millisecond, false},
		{5, time.Millisecond, 800 * time.Millisecond, false},
		{6, time.Millisecond, time.Second, false},
		{60, time.Millisecond, time.Second, false},
		{0, 250 * time.Millisecond, 300 * time.Millisecond, true}, // a slow poll skips due times
		{4, 500 * time.Millisecond, 600 * time.Millisecond, true}, // the slow poll outlasts the backoff
	} {
		t.Run(fmt.Sprintf("%d failures, end +%v", tc.failures, tc.end), func(t *testing.T) {
			next, overrun := p.nextDue(sched, due, due.Add(tc.end), tc.failures)
			if next.Sub(due) != tc.wait || overrun != tc.overrun {
				t.Errorf("next +%v overrun %v, want +%v %v", next.Sub(due), overrun, tc.wait, tc.overrun)
			}
		})
	}
	t.Run("long period not slowed", func(t *testing.T) {
		long := intervalSchedule{every: 2 * time.Second}
		if next, _ := p.nextDue(long, due, due, 10); next.Sub(due) != 2*time.Second {
			t.Errorf("next +%v, want +2s", next.Sub(due))
		}
	})
}

// TestPollerBackoffAndRecovery: a device that cannot be reached is polled
// less often, and back on its schedule once it answers.
func TestPollerBackoffAndRecovery(t *testing.T) {
	addr := closedAddr(t)
	conn := newConn(t, ConnConfig{Address: addr, ReconnectMin: 10 * time.Millisecond, ReconnectMax: 20 * time.Millisecond})
	col := newCollector()
	p, err := NewPoller(PollerConfig{FailureThreshold: 2, MaxBackoff: 400 * time.Millisecond}, []Device{{
		ID: "press-1", Factory: "plant-a", Class: parseClass(t, pressYAML), Conn: conn, Unit: 1,
		Schedule: Schedule{Interval: 100 * time.Millisecond}, Seq: 7,
	}}, col.emit, WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	runPoller(t, p)
	eventually(t, "4 consecutive failures", func() bool { return health(p, "press-1").ConsecutiveFailures >= 4 })
	h := health(p, "press-1")
	if !h.SlowedDown || h.Samples != 0 || h.LastError == "" {
		t.Errorf("health %+v, want slowed down without samples", h)
	}
	// The waits themselves (100ms<<3 capped at 400ms here) are
	// TestPollerBackoffSchedule's.

	s := newSim(t, simulator.Config{Listen: addr})
	addUnit(t, s, 1)
	eventually(t, "a sample after the device came back", func() bool { return len(col.get("press-1")) >= 2 })
	h = health(p, "press-1")
	if h.SlowedDown || h.ConsecutiveFailures != 0 {
		t.Errorf("health %+v, want back on schedule", h)
	}
	smp := col.get("press-1")
	if smp[0].Seq != 7 || smp[1].Seq != 8 {
		t.Errorf("seqs %d, %d after failures, want 7, 8: failed polls use no seq", smp[0].Seq, smp[1].Seq)
	}
}

// TestPollerDeadConnection: devices on a connection whose server swallows
// every request do not delay the devices of another connection.
func TestPollerDeadConnection(t *testing.T) {
	dead := newSim(t, simulator.Config{})
	if err := dead.SetFaults(simulator.Fault{Kind: simulator.FaultNoReply}); err != nil {
		t.Fatal(err)
	}
	live := newSim(t, simulator.Config{})
	addUnit(t, live, 1)
	connA := newConn(t, ConnConfig{Name: "a", Address: dead.Addr().String(), Timeout: time.Second})
	connB := newConn(t, ConnConfig{Name: "b", Address: live.Addr().String()})
	class := parseClass(t, pressYAML)
	const interval = 100 * time.Millisecond
	devs := []Device{{ID: "b-1", Factory: "plant-a", Class: class, Conn: connB, Unit: 1, Schedule: Schedule{Interval: interval}}}
	for i := range 5 {
		devs = append(devs, Device{ID: fmt.Sprintf("a-%d", i), Factory: "plant-a", Class: class, Conn: connA, Unit: 1, Schedule: Schedule{Interval: interval}})
	}
	col := newCollector()
	p, err := NewPoller(PollerConfig{MaxBackoff: time.Second}, devs, col.emit, WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	runPoller(t, p)
	// If connection a held b-1 up, each of a's polls would cost b-1 a
	// second (5 dead devices: one b-1 sample per 5 s round, 4 within
	// eventually's 20 s); on its own b-1 gets 10 in about a second.
	eventually(t, "10 samples of b-1 beside a dead connection", func() bool { return len(col.get("b-1")) >= 10 })
	eventually(t, "a poll of connection a timed out", func() bool {
		for _, h := range p.Health() {
			if h.Conn == "a" && h.Polls > 0 {
				return true
			}
		}
		return false
	})
	var aPolls uint64
	for _, h := range p.Health() {
		if h.Conn != "a" {
			continue
		}
		aPolls += h.Polls
		if h.Samples != 0 || h.Polls > 0 && !strings.Contains(h.LastError, "timed out") {
			t.Errorf("%s health %+v, want timeouts", h.ID, h)
		}
	}
	if aPolls == 0 {
		t.Error("no device of connection a was polled")
	}
	t.Logf("b-1: %d samples; a-*: %d polls", len(col.get("b-1")), aPolls)
}

func TestPollerCron(t *testing.T) {
	s := newSim(t, simulator.Config{})
	addUnit(t, s, 1)
	conn := newConn(t, ConnConfig{Address: s.Addr().String()})
	col := newCollector()
	p, err := NewPoller(PollerConfig{}, []Device{{
		ID: "press-1", Factory: "plant-a", Class: parseClass(t, pressYAML), Conn: conn, Unit: 1,
		Schedule: Schedule{Cron: "* * * * * *"},
	}}, col.emit)
	if err != nil {
		t.Fatal(err)
	}
	if due := health(p, "press-1").NextDue; due.Nanosecond() != 0 {
		t.Errorf("first due %v, want a whole second", due)
	}
	runPoller(t, p)
	eventually(t, "2 samples", func() bool { return len(col.get("press-1")) >= 2 })
	if h := health(p, "press-1"); h.NextDue.Nanosecond() != 0 || h.Schedule != "cron * * * * * *" {
		t.Errorf("health %+v, want whole-second due times", h)
	}
}

func TestScheduleValidate(t *testing.T) {
	for _, tc := range []struct {
		s    Schedule
		want string // "" for valid
	}{
		{Schedule{Interval: time.Second}, ""},
		{Schedule{Interval: MinInterval}, ""},
		{Schedule{Cron: "*/5 * * * * *"}, ""},
		{Schedule{Cron: "*/15 * * * *"}, ""},
		{Schedule{Cron: "@every 30s"}, ""},
		{Schedule{Cron: "@hourly"}, ""},
		{Schedule{Cron: "CRON_TZ=UTC 0 0 * * *"}, ""},
		{Schedule{}, "set interval"},
		{Schedule{Interval: time.Second, Cron: "* * * * *"}, "both set"},
		{Schedule{Interval: 50 * time.Millisecond}, "interval 50ms is shorter than 100ms"},
		{Schedule{Interval: -time.Second}, "interval -1s is shorter"},
		{Schedule{Cron: "every second"}, `cron "every second"`},
		{Schedule{Cron: "* * * *"}, `cron "* * * *"`},
		{Schedule{Cron: "61 * * * *"}, "61"},
		{Schedule{Cron: "0 0 30 2 *"}, "never fires"},
		{Schedule{Cron: "CRON_TZ=UTC"}, "malformed"},
		{Schedule{Cron: "CRON_TZ=Nowhere/City 0 0 * * *"}, "Nowhere/City"},
		{Schedule{Cron: " * * * * *"}, "white space"},
		{Schedule{Cron: "@fortnightly"}, "fortnightly"},
	} {
		t.Run(tc.s.String(), func(t *testing.T) {
			err := tc.s.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalidConfig)):
				t.Fatalf("got %v, want an ErrInvalidConfig containing %q", err, tc.want)
			}
		})
	}
	t.Run("cron next", func(t *testing.T) {
		sched, err := Schedule{Cron: "CRON_TZ=UTC */5 * * * * *"}.compile()
		if err != nil {
			t.Fatal(err)
		}
		at := time.Date(2026, 1, 1, 12, 0, 3, 0, time.UTC)
		if got := sched.next(at); !got.Equal(at.Add(2 * time.Second)) {
			t.Errorf("next after %v: %v", at, got)
		}
		if got := sched.period(at); got != 5*time.Second {
			t.Errorf("period %v, want 5s", got)
		}
	})
	t.Run("interval next", func(t *testing.T) {
		s := intervalSchedule{every: time.Second, phase: 250 * time.Millisecond}
		for _, tc := range []struct{ at, want time.Time }{
			{time.Unix(10, 0), time.Unix(10, 250e6)},
			{time.Unix(10, 250e6), time.Unix(11, 250e6)},
			{time.Unix(10, 900e6), time.Unix(11, 250e6)},
			{time.Unix(-1, 0), time.Unix(-1, 250e6)},
			{time.Unix(-1, 300e6), time.Unix(0, 250e6)},
		} {
			if got := s.next(tc.at); !got.Equal(tc.want) {
				t.Errorf("next(%v) = %v, want %v", tc.at.UnixNano(), got.UnixNano(), tc.want.UnixNano())
			}
		}
	})
}

func TestNewPollerValidates(t *testing.T) {
	conn := newConn(t, ConnConfig{Address: closedAddr(t)})
	rtu := newConn(t, ConnConfig{Transport: RTU, Address: "/dev/null-serial"})
	class := parseClass(t, pressYAML)
	good := Device{ID: "d-1", Factory: "plant-a", Class: class, Conn: conn, Unit: 1, Schedule: Schedule{Interval: time.Second}}
	emit := newCollector().emit
	for _, tc := range []struct {
		name string
		edit func(*Device)
		want string
	}{
		{"bad id", func(d *Device) { d.ID = "-x" }, "id: invalid device id"},
		{"bad factory", func(d *Device) { d.Factory = "Plant A" }, "factory: invalid name"},
		{"bad tag", func(d *Device) { d.Tags = map[string]string{"line": ""} }, "tags.line: value is empty"},
		{"nil class", func(d *Device) { d.Class = nil }, "class: nil"},
		{"nil conn", func(d *Device) { d.Conn = nil }, "conn: nil"},
		{"bad schedule", func(d *Device) { d.Schedule = Schedule{Interval: time.Millisecond} }, "interval 1ms"},
		{"rtu broadcast", func(d *Device) { d.Conn, d.Unit = rtu, 0 }, "unit 0 on a serial line"},
		{"plan too large", func(d *Device) {
			d.Plan = devices.Plan{Reads: []devices.Read{{Table: devices.HoldingRegisters, Quantity: 126}}}
		}, "quantity 126"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := good
			tc.edit(&d)
			_, err := NewPoller(PollerConfig{}, []Device{d}, emit)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("got %v, want an ErrInvalidConfig containing %q", err, tc.want)
			}
		})
	}
	t.Run("duplicate id", func(t *testing.T) {
		if _, err := NewPoller(PollerConfig{}, []Device{good, good}, emit); err == nil || !strings.Contains(err.Error(), `"d-1" is used twice`) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("nil emit", func(t *testing.T) {
		if _, err := NewPoller(PollerConfig{}, []Device{good}, nil); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("bad config", func(t *testing.T) {
		if _, err := NewPoller(PollerConfig{FailureThreshold: -1}, []Device{good}, emit); err == nil || !strings.Contains(err.Error(), "failure_threshold: -1") {
			t.Fatalf("got %v", err)
		}
	})
}

// TestPollerEmitError: an Emit error stops the Poller, and the sample's seq
// stays unused.
func TestPollerEmitError(t *testing.T) {
	s := newSim(t, simulator.Config{})
	addUnit(t, s, 1)
	conn := newConn(t, ConnConfig{Address: s.Addr().String()})
	errFull := errors.New("spool full")
	var seqs []uint64
	p, err := NewPoller(PollerConfig{}, []Device{{
		ID: "press-1", Factory: "plant-a", Class: parseClass(t, pressYAML), Conn: conn, Unit: 1,
		Schedule: Schedule{Interval: 100 * time.Millisecond}, Seq: 100,
	}}, func(_ context.Context, samples []devices.Sample) error {
		for _, s := range samples {
			seqs = append(seqs, s.Seq)
		}
		if len(seqs) == 2 {
			return errFull
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = p.Run(ctx)
	if !errors.Is(err, errFull) || !strings.Contains(err.Error(), "press-1 seq 101") {
		t.Fatalf("Run: %v, want the emit error naming device and seq", err)
	}
	if fmt.Sprint(seqs) != "[100 101]" || health(p, "press-1").NextSeq != 101 {
		t.Errorf("seqs %v, next %d; want [100 101], 101", seqs, health(p, "press-1").NextSeq)
	}
	if err := p.Run(ctx); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run: %v", err)
	}
}

// valuesEmits records a WithValues poller's samples: what each encodes to
// and its maps, taken during Emit (the Values are the Poller's again
// afterwards), and the sample itself (its Values pointer kept, and so
// never reused by the allocator while the test runs).
type valuesEmits struct {
	mu  sync.Mutex
	got map[string][]valuesEmit
}

type valuesEmit struct {
	smp      devices.Sample
	json     string
	withMaps devices.Sample
}

func (v *valuesEmits) emit(_ context.Context, samples []devices.Sample) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.got == nil {
		v.got = map[string][]valuesEmit{}
	}
	for _, smp := range samples {
		e := valuesEmit{smp: smp, json: string(smp.AppendJSON(nil)), withMaps: smp}
		if smp.Values != nil {
			e.withMaps.Values = nil
			e.withMaps.Fields, e.withMaps.Errors = smp.Values.Maps()
		}
		v.got[smp.Device] = append(v.got[smp.Device], e)
	}
	return nil
}

func (v *valuesEmits) get(dev string) []valuesEmit {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.got[dev])
}

// TestPollerValues: with WithValues a sample carries its fields in
// Values, which encode as the maps would (beyond's read fails with
// exception 2, an error among the fields), except a device with a Report
// function, which gets the maps it compares. Once Emit has returned, a
// connection that polls again within spareValuesWait reuses a sample's
// Values for a later poll; one that waits longer lets them go.
func TestPollerValues(t *testing.T) {
	s := newSim(t, simulator.Config{})
	addUnit(t, s, 3)
	class := parseClass(t, beyondYAML)
	for _, tc := range []struct {
		every  time.Duration
		reused bool
	}{{spareValuesWait, true}, {3 * spareValuesWait, false}} {
		t.Run(tc.every.String(), func(t *testing.T) {
			conn := newConn(t, ConnConfig{Address: s.Addr().String()})
			var rec valuesEmits
			every := Schedule{Interval: tc.every}
			p, err := NewPoller(PollerConfig{}, []Device{
				{ID: "plain", Factory: "plant-a", Class: class, Conn: conn, Unit: 3, Schedule: every},
				{ID: "reported", Factory: "plant-a", Class: class, Conn: conn, Unit: 3, Schedule: every,
					Report: func(*devices.Sample) bool { return true }},
			}, rec.emit, WithValues(), WithLogger(testLogger(t)))
			if err != nil {
				t.Fatal(err)
			}
			runPoller(t, p)
			eventually(t, "3 samples of each", func() bool { return len(rec.get("plain")) >= 3 && len(rec.get("reported")) >= 3 })
			plain := rec.get("plain")[:3]
			for _, e := range plain {
				if e.smp.Values == nil || e.smp.Fields != nil || e.smp.Errors != nil {
					t.Fatalf("plain: Values %v, Fields %v, Errors %v", e.smp.Values, e.smp.Fields, e.smp.Errors)
				}
				checkPress(t, e.withMaps, 3)
				if !strings.Contains(e.withMaps.Errors["beyond"], "exception 2") {
					t.Errorf("plain: errors %v, want beyond's exception 2", e.withMaps.Errors)
				}
				if b := string(e.withMaps.AppendJSON(nil)); e.json != b {
					t.Errorf("plain: JSON of Values %s, of its maps %s", e.json, b)
				}
			}
			// One scan's batch is emitted before the next scan's polls:
			// with a short wait those get its Values back.
			v0, v1, v2 := plain[0].smp.Values, plain[1].smp.Values, plain[2].smp.Values
			if reused := v1 == v0 || v2 == v1 || v2 == v0; reused != tc.reused {
				t.Errorf("plain every %v: Values %p, %p, %p: reused %v, want %v", tc.every, v0, v1, v2, reused, tc.reused)
			}
			for _, e := range rec.get("reported")[:3] {
				if e.smp.Values != nil {
					t.Fatalf("reported: Values set for a device with Report")
				}
				checkPress(t, e.smp, 3)
			}
		})
	}
}
