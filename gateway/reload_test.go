package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/devices/modbus"
	"github.com/factorywire/factorywire/devices/simulator"
)

// copyClasses copies the example register maps into a new directory the
// test may change, and returns it.
func copyClasses(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files, err := filepath.Glob("../configs/devices/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no register maps in ../configs/devices: %v", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// cloneConfig is cfg with its own connections and devices, to change
// without touching what a running gateway holds.
func cloneConfig(cfg Config) Config {
	cfg.Connections = slices.Clone(cfg.Connections)
	cfg.Devices = slices.Clone(cfg.Devices)
	return cfg
}

// deviceIndex is the index of device id in cfg.Devices.
func deviceIndex(t *testing.T, cfg Config, id string) int {
	t.Helper()
	i := slices.IndexFunc(cfg.Devices, func(d DeviceConfig) bool { return d.ID == id })
	if i < 0 {
		t.Fatalf("no device %s", id)
	}
	return i
}

func unitPtr(u uint8) *uint8 { return &u }

// reloadWith reloads g with cfg as the new configuration.
func reloadWith(g *Gateway, cfg Config) error {
	return g.Reload("test.yaml", func() (Config, error) { return cfg, nil })
}

// getDevices is /devices of g.
func getDevices(t *testing.T, g *Gateway) map[string]deviceJSON {
	t.Helper()
	resp, err := http.Get("http://" + g.Addr().String() + "/devices")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list []deviceJSON
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	out := map[string]deviceJSON{}
	for _, d := range list {
		out[d.ID] = d
	}
	return out
}

// waitSamples waits until each device's next seq has grown by at least
// more over from (by 0 for a device not in from).
func waitSamples(t *testing.T, g *Gateway, from map[string]uint64, more uint64, ids ...string) {
	t.Helper()
	waitFor(t, "samples of "+strings.Join(ids, ", "), 30*time.Second, func() bool {
		next := nextSeqs(g)
		for _, id := range ids {
			if next[id] < from[id]+more {
				return false
			}
		}
		return true
	})
}

// TestReloadDevicesAndConnections: one reload adds a device, removes one,
// changes one device's unit and interval, changes a register map and a
// connection's settings. The device nobody touched keeps its connection
// (the simulator of its line accepts no second one) and its samples keep
// flowing; the restarted devices' seqs go on; every device's delivered
// seqs are gap-free and in order across the reload; /devices, the log and
// the metrics show the change.
func TestReloadDevicesAndConnections(t *testing.T) {
	b := startBroker(t, t.TempDir(), "127.0.0.1:0")
	addr := b.Addr().String()
	plant := newTestPlant(t, addr, 100*time.Millisecond, 2) // line-1: press-00..01 units 1-2, power-meter-00..01 units 3-4
	classes, err := devices.LoadDir("../configs/devices")
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []uint8{5, 6} {
		if _, err := plant.sim.AddDevice(u, simulator.Device{Class: classes["press"], Seed: uint64(u)}); err != nil {
			t.Fatal(err)
		}
	}
	sim2, err := simulator.New(simulator.Config{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim2.Close() })
	if _, err := sim2.AddDevice(1, simulator.Device{Class: classes["press"], Seed: 11}); err != nil {
		t.Fatal(err)
	}
	cfg := plant.cfg
	cfg.ClassesDir = copyClasses(t)
	cfg.Connections = append(cfg.Connections, modbus.ConnConfig{Name: "line-2", Address: sim2.Addr().String()})
	cfg.Devices = append(cfg.Devices, DeviceConfig{ID: "press-10", Class: "press", Connection: "line-2", Unit: unitPtr(1), Schedule: scheduleEvery(100 * time.Millisecond)})
	plant.devices["press-10"], plant.devices["press-02"] = "press", "press"
	createTopics(t, addr, plant.topics)
	var logs lockedBuffer
	g, stop := runGatewayLogged(t, cfg, logs.logger(slog.LevelInfo))
	all := []string{"press-00", "press-01", "power-meter-00", "power-meter-01", "press-10"}
	waitSamples(t, g, nil, 3, all...)

	// The new configuration and register maps.
	next := cfg
	next.Connections = slices.Clone(cfg.Connections)
	next.Connections[1].Timeout = 2 * time.Second // line-2 restarts
	next.Devices = nil
	for _, d := range cfg.Devices {
		switch d.ID {
		case "power-meter-01": // removed
			continue
		case "press-01": // another unit, another interval
			d.Unit, d.Schedule = unitPtr(5), scheduleEvery(200*time.Millisecond)
		}
		next.Devices = append(next.Devices, d)
	}
	next.Devices = append(next.Devices, DeviceConfig{ID: "press-02", Class: "press", Connection: "line-1", Unit: unitPtr(6), Schedule: scheduleEvery(100 * time.Millisecond)})
	pmFile := filepath.Join(cfg.ClassesDir, "power-meter.yaml")
	pm, err := os.ReadFile(pmFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pmFile, bytes.Replace(pm, []byte("name: voltage_l1\n"), []byte("name: voltage_a\n"), 1), 0o644); err != nil {
		t.Fatal(err)
	}

	before := nextSeqs(g)
	if err := reloadWith(g, next); err != nil {
		t.Fatalf("reload: %v", err)
	}
	removedLast := before["power-meter-01"] - 1 // at least
	waitSamples(t, g, nextSeqs(g), 5, "press-00", "press-01", "power-meter-00", "press-10", "press-02")

	devs := getDevices(t, g)
	if _, ok := devs["power-meter-01"]; ok || len(devs) != 5 {
		t.Errorf("/devices after the reload lists %d devices, power-meter-01 among them: %v", len(devs), sortedKeys(devs))
	}
	if d := devs["press-01"]; d.Unit != 5 || d.IntervalSeconds == nil || *d.IntervalSeconds != 0.2 {
		t.Errorf("/devices: press-01 unit %d, interval %v; want 5, 0.2 s", d.Unit, d.IntervalSeconds)
	}
	if d, ok := devs["press-02"]; !ok || d.Connection != "line-1" || d.Unit != 6 {
		t.Errorf("/devices: press-02 %+v, want it on line-1 unit 6", d)
	}
	if n := plant.sim.Stats().Connections; n != 1 {
		t.Errorf("line-1's simulator accepted %d connections, want 1: an unchanged connection keeps its socket", n)
	}
	if n := sim2.Stats().Connections; n != 2 {
		t.Errorf("line-2's simulator accepted %d connections, want 2: a changed connection is opened again", n)
	}
	log := logs.String()
	for _, want := range []string{
		`msg="config reloaded" config=test.yaml devices_added=press-02 devices_removed=power-meter-01`,
		`press-01 (unit, interval)`, `power-meter-00 (register map power-meter)`, `press-10 (connection line-2 settings)`,
		`connections_restarted=line-2 register_maps_changed=power-meter`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %s:\n%s", want, log)
		}
	}
	if strings.Contains(log, "press-00 (") {
		t.Errorf("press-00 restarted:\n%s", log)
	}
	metrics := scrape(t, g)
	for _, want := range []string{
		`factorywire_gateway_config_reloads_total{result="success"} 1`,
		`factorywire_gateway_config_reloads_total{result="failure"} 0`,
		"factorywire_gateway_config_last_reload_successful 1",
		"factorywire_gateway_config_last_reload_success_timestamp_seconds 1.",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	stop()
	last, total := polled(g)
	last["power-meter-01"] = removedLast
	total += int(removedLast) + 1
	got := plant.delivered(t, addr, total)
	checkSeqs(t, got, plant.devices, last, false)
	pmSamples := got["power-meter-00"]
	if _, ok := pmSamples[0].Fields["voltage_l1"]; !ok {
		t.Errorf("power-meter-00's first sample lacks voltage_l1: %v", pmSamples[0].Fields)
	}
	s := pmSamples[len(pmSamples)-1]
	if _, ok := s.Fields["voltage_a"]; !ok {
		t.Errorf("power-meter-00's last sample (seq %d) is not of the new register map: %v", s.Seq, s.Fields)
	}
}

// TestReloadRefused: a configuration that fails its check, a register map
// that does not parse and a file that cannot be read are each logged with
// their error and counted, and the running configuration keeps polling;
// the next good reload is applied.
func TestReloadRefused(t *testing.T) {
	b := startBroker(t, t.TempDir(), "127.0.0.1:0")
	addr := b.Addr().String()
	plant := newTestPlant(t, addr, 100*time.Millisecond, 1)
	cfg := plant.cfg
	cfg.ClassesDir = copyClasses(t)
	createTopics(t, addr, plant.topics)
	var logs lockedBuffer
	g, _ := runGatewayLogged(t, cfg, logs.logger(slog.LevelInfo))
	waitSamples(t, g, nil, 2, "press-00", "power-meter-00")

	badUnit := cloneConfig(cfg)
	badUnit.Devices[deviceIndex(t, cfg, "press-00")].Unit = unitPtr(250)
	badUnit.Devices = append(badUnit.Devices, DeviceConfig{ID: "press-09", Class: "press", Connection: "line-1", Schedule: scheduleEvery(time.Second)})
	badMap := filepath.Join(cfg.ClassesDir, "broken.yaml")
	for _, tc := range []struct {
		name  string
		load  func() (Config, error)
		setup func()
		want  string
	}{
		{"invalid key", func() (Config, error) { return badUnit, nil }, nil, "test.yaml: devices[0] (press-00).unit 250: want 0 to 247"},
		{"register map", func() (Config, error) { return cfg, nil }, func() {
			if err := os.WriteFile(badMap, []byte("class: broken\nfields:\n  - {name: x, table: holding_register, address: 0, type: uint16, sacle: 2}\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "broken.yaml:3"},
		{"unreadable", func() (Config, error) { return Config{}, errors.New("config: open test.yaml: permission denied") }, nil, "permission denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup()
			}
			from := nextSeqs(g)
			err := g.Reload("test.yaml", tc.load)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Reload: %v, want an error containing %q", err, tc.want)
			}
			if log := logs.String(); !strings.Contains(log, `level=ERROR msg="config reload failed; the running configuration stays" config=test.yaml err=`) || !strings.Contains(log, tc.want) {
				t.Errorf("the log lacks the failure:\n%s", log)
			}
			// The running configuration polls on.
			waitSamples(t, g, from, 3, "press-00", "power-meter-00")
			if devs := getDevices(t, g); len(devs) != 2 || devs["press-00"].Unit != 1 {
				t.Errorf("/devices after a refused reload: %+v", devs)
			}
			if m := scrape(t, g); !strings.Contains(m, "factorywire_gateway_config_last_reload_successful 0") {
				t.Errorf("/metrics lacks factorywire_gateway_config_last_reload_successful 0")
			}
		})
	}
	if m := scrape(t, g); !strings.Contains(m, `factorywire_gateway_config_reloads_total{result="failure"} 3`) {
		t.Errorf("/metrics lacks 3 failed reloads")
	}
	if err := os.Remove(badMap); err != nil {
		t.Fatal(err)
	}
	if err := reloadWith(g, cfg); err != nil {
		t.Fatalf("good reload: %v", err)
	}
	m := scrape(t, g)
	for _, want := range []string{"factorywire_gateway_config_last_reload_successful 1", `factorywire_gateway_config_reloads_total{result="success"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s after a good reload", want)
		}
	}
	if !strings.Contains(logs.String(), `msg="config reloaded; nothing changed" config=test.yaml`) {
		t.Errorf("the log lacks the good reload:\n%s", logs.String())
	}
}

// TestReloadKeysNeedingRestart: keys a reload cannot apply are each named
// in a warning and keep their running values, while the rest of the
// reload applies; reloads at the same time are serialised; a reload after
// Run has returned is refused.
func TestReloadKeysNeedingRestart(t *testing.T) {
	b := startBroker(t, t.TempDir(), "127.0.0.1:0")
	addr := b.Addr().String()
	plant := newTestPlant(t, addr, 100*time.Millisecond, 1)
	createTopics(t, addr, plant.topics)
	var logs lockedBuffer
	g, stop := runGatewayLogged(t, plant.cfg, logs.logger(slog.LevelInfo))
	waitSamples(t, g, nil, 2, "press-00", "power-meter-00")

	next := cloneConfig(plant.cfg)
	next.Factory = "plant-x"
	next.HTTPListen = "127.0.0.1:1"
	next.Spool.MaxBytes = 2 << 20
	next.Kafka.Linger = 50 * time.Millisecond
	next.Kafka.Brokers = []string{"127.0.0.1:1"}
	next.Poller.MaxBackoff = 2 * time.Minute
	i := deviceIndex(t, next, "press-00")
	next.Devices[i].Schedule = scheduleEvery(200 * time.Millisecond) // applied
	if err := reloadWith(g, next); err != nil {
		t.Fatalf("reload: %v", err)
	}
	log := logs.String()
	for _, key := range []string{"factory", "http_listen", "kafka.brokers", "kafka.linger", "spool.max_bytes", "poller.max_backoff"} {
		if !strings.Contains(log, `level=WARN msg="config reload: this key changes only at a restart; it keeps its running value" config=test.yaml key=`+key+"\n") {
			t.Errorf("no warning names %s:\n%s", key, log)
		}
	}
	if !strings.Contains(log, `devices_restarted="press-00 (interval)" needs_restart="factory, http_listen, kafka.brokers, kafka.linger, spool.max_bytes, poller.max_backoff"`) {
		t.Errorf("the summary lacks the restart and the keys kept:\n%s", log)
	}
	g.reloadMu.Lock()
	applied := g.applied
	g.reloadMu.Unlock()
	if applied.Factory != testFactory || applied.Spool.MaxBytes != plant.cfg.Spool.MaxBytes || applied.Kafka.Linger != plant.cfg.Kafka.Linger ||
		applied.HTTPListen != plant.cfg.HTTPListen || !slices.Equal(applied.Kafka.Brokers, plant.cfg.Kafka.Brokers) || applied.Poller != plant.cfg.Poller {
		t.Errorf("keys needing a restart changed: %+v", applied)
	}
	// Still producing to the running factory's topics, through the
	// running producer; the device's new schedule applies.
	from := nextSeqs(g)
	waitSamples(t, g, from, 3, "press-00", "power-meter-00")
	if d := getDevices(t, g)["press-00"]; d.Factory != testFactory || d.Schedule != "every 200ms" {
		t.Errorf("/devices: press-00 %+v", d)
	}

	// Two reloads at once: one after the other, both applied.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for k := range errs {
		wg.Go(func() { errs[k] = reloadWith(g, next) })
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Errorf("concurrent reloads: %v", errs)
	}

	stop()
	last, total := polled(g)
	checkSeqs(t, plant.delivered(t, addr, total), plant.devices, last, false)
	if err := reloadWith(g, next); !errors.Is(err, ErrStopped) {
		t.Errorf("reload after Run: %v, want ErrStopped", err)
	}
}

// TestReloadTags: a device's own tags changed restart it, and so do the
// top-level tags it inherits; its samples carry the new tags from the
// restart on, seq continuous. A device whose effective tags did not change
// (its own key overrides the top-level one) polls on.
func TestReloadTags(t *testing.T) {
	b := startBroker(t, t.TempDir(), "127.0.0.1:0")
	addr := b.Addr().String()
	plant := newTestPlant(t, addr, 100*time.Millisecond, 1) // press-00, power-meter-00
	cfg := plant.cfg
	cfg.Devices = slices.Clone(cfg.Devices)
	for i := range cfg.Devices {
		if cfg.Devices[i].ID == "power-meter-00" {
			cfg.Devices[i].Tags = map[string]string{"site": "east"}
		}
	}
	createTopics(t, addr, plant.topics)
	var logs lockedBuffer
	g, stop := runGatewayLogged(t, cfg, logs.logger(slog.LevelInfo))
	waitSamples(t, g, nil, 3, "press-00", "power-meter-00")

	next := cfg
	next.Tags = map[string]string{"site": "north"} // press-00 inherits it; power-meter-00 keeps east
	if err := reloadWith(g, next); err != nil {
		t.Fatalf("reload: %v", err)
	}
	waitSamples(t, g, nextSeqs(g), 3, "press-00", "power-meter-00")
	log := logs.String()
	if !strings.Contains(log, "press-00 (top-level tags)") || strings.Contains(log, "power-meter-00 (") {
		t.Errorf("the reload's log line does not restart press-00 alone for its tags:\n%s", log)
	}
	stop()
	last, total := polled(g)
	got := plant.delivered(t, addr, total)
	checkSeqs(t, got, plant.devices, last, false)
	press := got["press-00"]
	if first, final := press[0].Tags["site"], press[len(press)-1].Tags["site"]; first != "" || final != "north" {
		t.Errorf("press-00: first sample's site %q, last %q; want none, then north", first, final)
	}
	for _, s := range got["power-meter-00"] {
		if s.Tags["site"] != "east" {
			t.Fatalf("power-meter-00 seq %d: site %q, want east throughout", s.Seq, s.Tags["site"])
		}
	}
}
