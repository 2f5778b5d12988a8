package gateway

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/factorywire/factorywire/devices/modbus"
)

// deviceKeys are the keys of one /devices entry, as the package
// documentation lists them.
var deviceKeys = []string{
	"class", "connection", "consecutive_failures", "cron", "factory", "failures", "id",
	"interval_seconds", "last_attempt", "last_error", "last_round_trip_seconds", "last_success",
	"next_due", "next_seq", "overruns", "polls", "samples", "schedule", "slowed_down", "unit",
}

// TestDevicesJSON: a health snapshot becomes snake_case keys, durations in
// seconds, times in RFC 3339 UTC, and null for a time not yet come.
func TestDevicesJSON(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	health := []modbus.DeviceHealth{
		{ID: "press-01", Factory: "plant-a", Class: "press", Conn: "line-1", Unit: 3, Schedule: "every 1.5s",
			LastAttempt: time.Date(2026, 3, 2, 9, 15, 4, 500_000_000, cet), LastSuccess: time.Date(2026, 3, 2, 9, 15, 4, 500_000_000, cet),
			LastRoundTrip: 4200 * time.Microsecond, NextDue: time.Date(2026, 3, 2, 9, 15, 6, 0, cet),
			NextSeq: 18231, Polls: 18231, Samples: 18230, Failures: 1, Overruns: 2},
		{ID: "meter-01", Factory: "plant-a", Class: "power-meter", Conn: "line-2", Unit: 1, Schedule: "cron 0 */15 * * * *",
			ConsecutiveFailures: 4, LastError: "read holding 0-3: i/o timeout", SlowedDown: true},
	}
	schedules := map[string]modbus.Schedule{
		"press-01": {Interval: 1500 * time.Millisecond},
		"meter-01": {Cron: "0 */15 * * * *"},
	}
	raw, err := json.Marshal(devicesJSON(health, schedules))
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"id":"press-01","factory":"plant-a","class":"press","connection":"line-1","unit":3,"schedule":"every 1.5s",` +
		`"interval_seconds":1.5,"cron":null,"last_attempt":"2026-03-02T08:15:04.5Z","last_success":"2026-03-02T08:15:04.5Z",` +
		`"consecutive_failures":0,"last_error":"","last_round_trip_seconds":0.0042,"next_due":"2026-03-02T08:15:06Z",` +
		`"slowed_down":false,"next_seq":18231,"polls":18231,"samples":18230,"failures":1,"overruns":2},` +
		`{"id":"meter-01","factory":"plant-a","class":"power-meter","connection":"line-2","unit":1,"schedule":"cron 0 */15 * * * *",` +
		`"interval_seconds":null,"cron":"0 */15 * * * *","last_attempt":null,"last_success":null,` +
		`"consecutive_failures":4,"last_error":"read holding 0-3: i/o timeout","last_round_trip_seconds":0,"next_due":null,` +
		`"slowed_down":true,"next_seq":0,"polls":0,"samples":0,"failures":0,"overruns":0}]`
	if string(raw) != want {
		t.Fatalf("devices JSON:\n%s\nwant\n%s", raw, want)
	}
}

// TestDevicesEndpoint: a running gateway's /devices has one entry per
// device with exactly the documented keys, its interval in seconds, and
// its times in RFC 3339.
func TestDevicesEndpoint(t *testing.T) {
	b := startBroker(t, t.TempDir(), "127.0.0.1:0")
	addr := b.Addr().String()
	plant := newTestPlant(t, addr, 1500*time.Millisecond, 1)
	for i := range plant.cfg.Devices {
		if plant.cfg.Devices[i].Class == "power-meter" {
			plant.cfg.Devices[i].Schedule = modbus.Schedule{Cron: "*/2 * * * * *"}
		}
	}
	createTopics(t, addr, plant.topics)
	g, _ := runGateway(t, plant.cfg)
	waitFor(t, "a sample of every device", 20*time.Second, func() bool {
		for _, h := range g.Health() {
			if h.LastSuccess.IsZero() {
				return false
			}
		}
		return true
	})

	resp, err := http.Get("http://" + g.Addr().String() + "/devices")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var entries []map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&entries); err != nil {
		t.Fatalf("decode /devices: %v", err)
	}
	if len(entries) != len(plant.devices) {
		t.Fatalf("/devices has %d entries, want %d: %v", len(entries), len(plant.devices), entries)
	}
	for _, e := range entries {
		keys := make([]string, 0, len(e))
		for k := range e {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if !slices.Equal(keys, deviceKeys) {
			t.Errorf("keys of %v:\n%q\nwant\n%q", e["id"], keys, deviceKeys)
		}
		for _, k := range []string{"last_attempt", "last_success", "next_due"} {
			s, _ := e[k].(string)
			if ts, err := time.Parse(time.RFC3339Nano, s); err != nil || !strings.HasSuffix(s, "Z") || ts.IsZero() {
				t.Errorf("%v %s = %v, want an RFC 3339 time in UTC", e["id"], k, e[k])
			}
		}
		// Seconds, not time.Duration's nanoseconds: a loopback poll takes
		// milliseconds, so nanoseconds would be in the hundreds of
		// thousands at least.
		if rt, ok := e["last_round_trip_seconds"].(float64); !ok || rt <= 0 || rt >= 60 {
			t.Errorf("%v last_round_trip_seconds = %v, want seconds", e["id"], e["last_round_trip_seconds"])
		}
	}
	byID := map[string]map[string]any{}
	for _, e := range entries {
		byID[e["id"].(string)] = e
	}
	if p := byID["press-00"]; p["interval_seconds"] != 1.5 || p["cron"] != nil || p["schedule"] != "every 1.5s" || p["connection"] != "line-1" {
		t.Errorf("press-00: %v, want interval_seconds 1.5, cron null", p)
	}
	if m := byID["power-meter-00"]; m["interval_seconds"] != nil || m["cron"] != "*/2 * * * * *" {
		t.Errorf("power-meter-00: %v, want interval_seconds null, cron \"*/2 * * * * *\"", m)
	}
}
