package modbus

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/devices/simulator"
)

// checkConsecutive checks that the samples emitted for each device have
// the seqs from, from+1, ... in emission order, each once.
func checkConsecutive(t *testing.T, col *collector, from map[string]uint64) {
	t.Helper()
	for id, first := range from {
		for i, s := range col.get(id) {
			if want := first + uint64(i); s.Seq != want {
				t.Fatalf("device %s: sample %d has seq %d, want %d", id, i, s.Seq, want)
			}
		}
	}
}

func healthIDs(p *Poller) []string {
	var ids []string
	for _, h := range p.Health() {
		ids = append(ids, h.ID)
	}
	return ids
}

// TestPollerChange: while the poller runs, one change restarts a device on
// another unit of its connection, moves one to another connection, removes
// one and adds one; the device nobody touched keeps polling on its
// connection, no connection is opened again, each device's seqs go on
// without gap or repeat, and a device removed and added back later
// continues its seq.
func TestPollerChange(t *testing.T) {
	s1, s2 := newSim(t, simulator.Config{}), newSim(t, simulator.Config{})
	for _, u := range []uint8{1, 2, 3} {
		addUnit(t, s1, u)
	}
	for _, u := range []uint8{1, 2} {
		addUnit(t, s2, u)
	}
	c1 := newConn(t, ConnConfig{Name: "c1", Address: s1.Addr().String()})
	c2 := newConn(t, ConnConfig{Name: "c2", Address: s2.Addr().String()})
	press := parseClass(t, pressYAML)
	every := Schedule{Interval: 100 * time.Millisecond}
	dev := func(id string, c *Conn, unit uint8, s Schedule) Device {
		return Device{ID: id, Factory: "plant-a", Class: press, Conn: c, Unit: unit, Schedule: s}
	}
	col := newCollector()
	p, err := NewPoller(PollerConfig{}, []Device{
		dev("keep", c1, 1, every), dev("unit", c1, 2, every), dev("mover", c1, 3, every), dev("gone", c2, 1, every),
	}, col.emit, WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	runPoller(t, p)
	eventually(t, "3 samples of each device", func() bool {
		return len(col.get("keep")) >= 3 && len(col.get("unit")) >= 3 && len(col.get("mover")) >= 3 && len(col.get("gone")) >= 3
	})

	t.Run("refused", func(t *testing.T) {
		for name, ch := range map[string]Change{
			"unknown id":   {Remove: []string{"nope"}},
			"id twice":     {Add: []Device{dev("keep", c1, 3, every)}},
			"no class":     {Remove: []string{"unit"}, Add: []Device{{ID: "unit", Factory: "plant-a", Conn: c1, Unit: 2, Schedule: every}}},
			"bad schedule": {Remove: []string{"unit"}, Add: []Device{dev("unit", c1, 2, Schedule{})}},
		} {
			if err := p.Change(ch); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("%s: Change = %v, want ErrInvalidConfig", name, err)
			}
		}
		if got := healthIDs(p); !slices.Equal(got, []string{"gone", "keep", "mover", "unit"}) {
			t.Errorf("after refused changes the devices are %v", got)
		}
	})

	err = p.Change(Change{
		Remove: []string{"unit", "mover", "gone"},
		Add:    []Device{dev("unit", c1, 3, Schedule{Interval: 200 * time.Millisecond}), dev("mover", c2, 2, every), dev("fresh", c2, 1, every)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := healthIDs(p); !slices.Equal(got, []string{"fresh", "keep", "mover", "unit"}) {
		t.Errorf("after the change the devices are %v", got)
	}
	if h := health(p, "unit"); h.Unit != 3 || h.Schedule != "every 200ms" || h.Conn != "c1" {
		t.Errorf("restarted device's health: %+v", h)
	}
	if h := health(p, "mover"); h.Conn != "c2" {
		t.Errorf("moved device's health: %+v", h)
	}
	gone := len(col.get("gone"))
	before := map[string]int{"keep": len(col.get("keep")), "unit": len(col.get("unit")), "mover": len(col.get("mover"))}
	eventually(t, "3 more samples of each device", func() bool {
		return len(col.get("keep")) >= before["keep"]+3 && len(col.get("unit")) >= before["unit"]+3 &&
			len(col.get("mover")) >= before["mover"]+3 && len(col.get("fresh")) >= 3
	})
	if n := len(col.get("gone")); n != gone {
		t.Errorf("the removed device emitted %d samples after Change returned", n-gone)
	}
	checkConsecutive(t, col, map[string]uint64{"keep": 0, "unit": 0, "mover": 0, "gone": 0, "fresh": 0})
	for _, s := range col.get("unit")[before["unit"]:] {
		checkPress(t, s, 3) // read from its new unit
	}
	for _, s := range col.get("mover")[before["mover"]:] {
		checkPress(t, s, 2)
	}
	if n1, n2 := s1.Stats().Connections, s2.Stats().Connections; n1 != 1 || n2 != 1 {
		t.Errorf("the simulators accepted %d and %d connections, want 1 each: the Conns stay open across a change", n1, n2)
	}

	// Removed, then back on another connection: its seq continues (its
	// Device.Seq, 0, is lower).
	if err := p.Change(Change{Remove: []string{"fresh"}}); err != nil {
		t.Fatal(err)
	}
	n := len(col.get("fresh"))
	if err := p.Change(Change{Add: []Device{dev("fresh", c1, 1, every)}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "fresh polled again", func() bool { return len(col.get("fresh")) >= n+2 })
	checkConsecutive(t, col, map[string]uint64{"fresh": 0})
}

// TestPollerChangeBeforeAndAfterRun: a change before Run sets the devices
// Run starts with; after Run has returned, Change returns ErrStopped.
func TestPollerChangeBeforeAndAfterRun(t *testing.T) {
	s := newSim(t, simulator.Config{})
	addUnit(t, s, 1)
	addUnit(t, s, 2)
	c := newConn(t, ConnConfig{Address: s.Addr().String()})
	press := parseClass(t, pressYAML)
	every := Schedule{Interval: 100 * time.Millisecond}
	col := newCollector()
	p, err := NewPoller(PollerConfig{}, []Device{{ID: "a", Factory: "plant-a", Class: press, Conn: c, Unit: 1, Schedule: every, Seq: 7}}, col.emit)
	if err != nil {
		t.Fatal(err)
	}
	err = p.Change(Change{Remove: []string{"a"}, Add: []Device{
		{ID: "a", Factory: "plant-a", Class: press, Conn: c, Unit: 2, Schedule: every},
		{ID: "b", Factory: "plant-a", Class: press, Conn: c, Unit: 1, Schedule: every, Seq: 3},
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	eventually(t, "2 samples of each", func() bool { return len(col.get("a")) >= 2 && len(col.get("b")) >= 2 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	checkConsecutive(t, col, map[string]uint64{"a": 7, "b": 3})
	checkPress(t, col.get("a")[0], 2)
	if err := p.Change(Change{Remove: []string{"b"}}); !errors.Is(err, ErrStopped) {
		t.Errorf("Change after Run: %v, want ErrStopped", err)
	}
}

// TestPollerChangeDuringStop: a change waiting for a connection whose Emit
// blocks (backpressure) returns ErrStopped when Run ends, and Run returns.
func TestPollerChangeDuringStop(t *testing.T) {
	s := newSim(t, simulator.Config{})
	addUnit(t, s, 1)
	c := newConn(t, ConnConfig{Address: s.Addr().String()})
	blocked := make(chan struct{})
	var once sync.Once
	p, err := NewPoller(PollerConfig{}, []Device{{ID: "a", Factory: "plant-a", Class: parseClass(t, pressYAML), Conn: c, Unit: 1, Schedule: Schedule{Interval: 100 * time.Millisecond}}},
		func(ctx context.Context, _ []devices.Sample) error {
			once.Do(func() { close(blocked) })
			<-ctx.Done() // a spool that stays full
			return ctx.Err()
		})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	<-blocked
	changed := make(chan error, 1)
	go func() { changed <- p.Change(Change{Remove: []string{"a"}}) }()
	select {
	case err := <-changed:
		t.Fatalf("Change returned %v while the connection's Emit blocks", err)
	case <-time.After(200 * time.Millisecond): // not a timing assertion: it must not return at all before the stop
	}
	cancel()
	if err := <-changed; !errors.Is(err, ErrStopped) {
		t.Errorf("Change during the stop: %v, want ErrStopped", err)
	}
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}
