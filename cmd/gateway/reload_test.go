package main

import (
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/devices/simulator"
	"github.com/factorywire/factorywire/internal/testchild"
)

// TestRunReloadsOnSIGHUP runs `gateway run` polling the simulator; after
// the config file gains a device and SIGHUP is sent, /devices lists it; a
// file with a mistyped key is refused on SIGHUP, logged with the file,
// line and key, counted, and the gateway polls on with what it had;
// SIGTERM then stops it cleanly.
func TestRunReloadsOnSIGHUP(t *testing.T) {
	classesDir, err := filepath.Abs("../../configs/devices")
	if err != nil {
		t.Fatal(err)
	}
	classes, err := devices.LoadDir(classesDir)
	if err != nil {
		t.Fatal(err)
	}
	sim, err := simulator.New(simulator.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	for _, u := range []uint8{1, 2} {
		if _, err := sim.AddDevice(u, simulator.Device{Class: classes["press"], Seed: uint64(u)}); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	head := "factory: plant-r\n" +
		"data_dir: " + filepath.Join(dir, "data") + "\n" +
		"classes_dir: " + classesDir + "\n" +
		"http_listen: 127.0.0.1:0\n" +
		"kafka:\n  brokers: [127.0.0.1:1]\n" +
		"connections:\n  - {name: line-1, address: " + sim.Addr().String() + "}\n" +
		"devices:\n  - {id: press-01, class: press, connection: line-1, unit: 1, interval: 100ms}\n"
	path := filepath.Join(dir, "gateway.yaml")
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(head)
	cmd := command(nil, "run", "--config", path)
	m, log := testchild.StartWaiting(t, cmd, regexp.MustCompile(`msg="gateway running".* http=(\S+)`), 30*time.Second)
	base := "http://" + m[1]
	get := func(p string) string {
		t.Helper()
		resp, err := http.Get(base + p)
		if err != nil {
			t.Fatalf("GET %s: %v\n%s", p, err, log)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return string(body)
	}
	samples := func() map[string]uint64 {
		t.Helper()
		var list []struct {
			ID      string `json:"id"`
			Samples uint64 `json:"samples"`
		}
		if err := json.Unmarshal([]byte(get("/devices")), &list); err != nil {
			t.Fatal(err)
		}
		out := map[string]uint64{}
		for _, d := range list {
			out[d.ID] = d.Samples
		}
		return out
	}
	ids := func() []string {
		t.Helper()
		return slices.Sorted(maps.Keys(samples()))
	}
	// polled waits until each device has been polled since from.
	polled := func(from map[string]uint64, ids ...string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			now := samples()
			done := true
			for _, id := range ids {
				done = done && now[id] > from[id]
			}
			if done {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%v not polled within 20s (samples %v, before %v):\n%s", ids, now, from, log)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitLog := func(what string, re *regexp.Regexp) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !re.MatchString(log.String()) {
			if time.Now().After(deadline) {
				t.Fatalf("no log line %s:\n%s", what, log)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if got := ids(); !slices.Equal(got, []string{"press-01"}) {
		t.Fatalf("/devices before the reload: %v", got)
	}
	polled(nil, "press-01")

	write(head + "  - {id: press-02, class: press, connection: line-1, unit: 2, interval: 100ms}\n")
	cmd.Process.Signal(syscall.SIGHUP)
	waitLog("saying the device was added", regexp.MustCompile(`msg="config reloaded" config=\S+gateway.yaml devices_added=press-02\n`))
	if got := ids(); !slices.Equal(got, []string{"press-01", "press-02"}) {
		t.Fatalf("/devices after the reload: %v", got)
	}
	polled(samples(), "press-01", "press-02") // the added device polls, the other polls on

	write(head + "  - {id: press-02, class: press, connection: line-1, unit: 2, intervall: 100ms}\n")
	cmd.Process.Signal(syscall.SIGHUP)
	waitLog("naming the file, line and key refused", regexp.MustCompile(`level=ERROR msg="config reload failed; the running configuration stays" config=\S+gateway.yaml err=".*gateway.yaml:11: unknown key \\"intervall\\"`))
	if got := ids(); !slices.Equal(got, []string{"press-01", "press-02"}) {
		t.Fatalf("/devices after a refused reload: %v", got)
	}
	polled(samples(), "press-01", "press-02")
	metrics := get("/metrics")
	for _, want := range []string{
		`factorywire_gateway_config_reloads_total{result="failure"} 1`,
		`factorywire_gateway_config_reloads_total{result="success"} 1`,
		"factorywire_gateway_config_last_reload_successful 0",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	cmd.Process.Signal(syscall.SIGTERM)
	if err := log.Wait(cmd); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, log)
	}
	if n := sim.Stats().Connections; n != 1 {
		t.Errorf("the simulator accepted %d connections, want 1: adding a device keeps the connection", n)
	}
}
