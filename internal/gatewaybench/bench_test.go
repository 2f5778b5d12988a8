package gatewaybench

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/factorywire/factorywire/gateway"
)

// TestMain lets the test binary play the children: startRole re-executes
// os.Executable, which under `go test` is this binary.
func TestMain(m *testing.M) {
	if role := os.Getenv(ChildEnv); role != "" {
		os.Exit(ServeChild(role, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// TestTinyRun runs every part once with the -quick settings and short
// windows: the floor and the poller on one connection, our gateway and our
// poller alone over 20 devices. Telegraf runs too when GATEWAYBENCH_TELEGRAF
// names a binary. It checks that every run completed, counted something,
// kept every device polled, and that the report holds every table. Nothing
// is timed.
func TestTinyRun(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ApplyQuick(map[string]bool{})
	cfg.FloorConns = []int{1}
	cfg.FloorDuration, cfg.FloorWarmup = 500*time.Millisecond, 100*time.Millisecond
	cfg.Warmup, cfg.Window, cfg.Drain = 200*time.Millisecond, 2*time.Second, time.Second
	cfg.Dir = t.TempDir()
	cfg.Telegraf = os.Getenv("GATEWAYBENCH_TELEGRAF")
	if cfg.Telegraf != "" {
		cfg.Drain = 2 * time.Second
	}
	b, out := runBench(t, cfg)
	if len(b.floor) != 2 {
		t.Errorf("%d floor runs, want 2 (floor, poller)", len(b.floor))
	}
	reads := int64(len(b.class.Plan.Reads))
	for _, r := range b.floor {
		// The window may cut a poll in two, on each connection.
		if d := int64(r.Requests) - reads*int64(r.Polls); r.Polls == 0 || d < -reads*int64(r.Conns) || d > reads*int64(r.Conns) {
			t.Errorf("%s: %d requests, %d polls of %d reads", r.Mode, r.Requests, r.Polls, reads)
		}
	}
	tools, _ := cfg.tools()
	if len(b.system) != len(tools) {
		t.Errorf("%d whole-system runs, want %d (%v)", len(b.system), len(tools), tools)
	}
	window := int(cfg.Window.Seconds())
	for _, r := range b.system {
		if r.Win.Records == 0 || r.Win.MinPerKey < window-1 || r.Fields != "" {
			t.Errorf("%s: %d samples in the window, %d..%d per device (want about %d), fields: %q",
				r.Tool, r.Win.Records, r.Win.MinPerKey, r.Win.MaxPerKey, window, r.Fields)
		}
		if r.Tool != toolPollerOnly && len(r.Win.Keys) != r.Devices {
			t.Errorf("%s: samples of %d devices at the broker, want %d", r.Tool, len(r.Win.Keys), r.Devices)
		}
	}
	for _, r := range b.system {
		if r.Tool == toolOurs && (r.Health[1].Devices != r.Devices || r.Health[1].Samples <= r.Health[0].Samples) {
			t.Errorf("ours: /devices health %+v then %+v, want %d devices sampling", r.Health[0], r.Health[1], r.Devices)
		}
	}
	sections := []string{"run as the cmd/gateway binary, built from this tree", "## Polling flat out", "**poller/floor**", "poller/floor per run", "## Whole system at 1 Hz", "## Aims", "## Every run"}
	if cfg.Telegraf == "" {
		sections = append(sections, "telegraf: **skipped**")
	} else {
		sections = append(sections, "**ours/telegraf**")
	}
	for _, s := range sections {
		if !strings.Contains(out, s) {
			t.Errorf("report lacks %q:\n%s", s, out)
		}
	}
}

// runBench validates cfg, runs it (within 2 minutes) and returns the bench
// and its report; a failed run fails the test.
func runBench(t *testing.T, cfg Config) (*bench, string) {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	b := newBench(cfg, &out, io.Discard)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := b.Run(ctx); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	return b, out.String()
}

// TestSelfGateway runs our gateway as this binary's built-in role
// (-gateway self), the way the deployed binary's figures are checked
// against.
func TestSelfGateway(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ApplyQuick(map[string]bool{})
	cfg.Parts, cfg.Gateway = []string{partGateway}, GatewaySelf
	cfg.Warmup, cfg.Window, cfg.Drain = 200*time.Millisecond, 2*time.Second, time.Second
	cfg.Dir = t.TempDir()
	b, out := runBench(t, cfg)
	if len(b.system) != 1 || b.system[0].Win.Records == 0 || b.system[0].Health[1].Devices != b.system[0].Devices {
		t.Errorf("runs: %+v", b.system)
	}
	if !strings.Contains(out, "built-in gateway role") {
		t.Errorf("report does not say the built-in role ran:\n%s", out)
	}
}

// TestDeployedConfig checks that the YAML file the deployed gateway gets
// is, as the gateway loads it, the configuration the built-in role runs.
func TestDeployedConfig(t *testing.T) {
	lay := gatewayLayout{Devices: 450, UnitsPerConn: 200, Sims: []string{"127.0.0.1:5020", "127.0.0.1:5021"}}
	dir := t.TempDir()
	path := filepath.Join(dir, "gateway.yaml")
	want := gatewayConfig(lay, "bench", "127.0.0.1:9092", filepath.Join(dir, "data"), filepath.Join(dir, "classes"), "press")
	want.Spool.Sync, want.HTTPListen = gateway.SyncInterval, "127.0.0.1:9108"
	want.Kafka.Brokers = append(want.Kafka.Brokers, "127.0.0.1:9093") // more than one written right
	yaml := deployedConfig(want)
	if err := os.WriteFile(path, yaml, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := gateway.LoadConfig(path)
	if err != nil {
		t.Fatalf("%v\n%s", err, yaml)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("loaded config differs from the role's:\n got %+v\nwant %+v", got, want)
	}
}

func TestTelegrafConfig(t *testing.T) {
	class, err := benchClass()
	if err != nil {
		t.Fatal(err)
	}
	l := gatewayLayout{Devices: 5, UnitsPerConn: 2, Sims: []string{"127.0.0.1:1", "127.0.0.1:2"}}
	conf, err := telegrafConfig(class, l, "127.0.0.1:9092", "t.press")
	if err != nil {
		t.Fatal(err)
	}
	s := string(conf)
	blocks, err := telegrafBlocks(class)
	if err != nil {
		t.Fatal(err)
	}
	// press: holding ABCD, holding CDAB (motor_power), coils.
	if len(blocks) != 3 {
		t.Errorf("%d request blocks per device, want 3: %+v", len(blocks), blocks)
	}
	if got, want := strings.Count(s, "[[inputs.modbus]]"), 3; got != want {
		t.Errorf("%d inputs, want %d (5 devices, 2 per connection)", got, want)
	}
	if got, want := strings.Count(s, "[[inputs.modbus.request]]"), 5*len(blocks); got != want {
		t.Errorf("%d request blocks, want %d", got, want)
	}
	for _, f := range class.Fields {
		if got := strings.Count(s, "name = \""+f.Name+"\""); got != 5 {
			t.Errorf("field %s appears %d times, want once per device (5)", f.Name, got)
		}
	}
	for _, want := range []string{`controller = "tcp://127.0.0.1:1"`, `controller = "tcp://127.0.0.1:2"`,
		`tags = { device = "press-002-001" }`, `byte_order = "CDAB"`, `type = "BIT", bit = 8`, `scale = 0.01`} {
		if !strings.Contains(s, want) {
			t.Errorf("configuration lacks %s:\n%s", want, s)
		}
	}
}

func TestLayoutConns(t *testing.T) {
	tests := []struct {
		name           string
		devices, units int
		want           []int
	}{
		{"exact", 1000, 200, []int{200, 200, 200, 200, 200}},
		{"rest", 450, 200, []int{200, 200, 50}},
		{"fewer than a connection", 20, 200, []int{20}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (gatewayLayout{Devices: tt.devices, UnitsPerConn: tt.units}).conns(); !slices.Equal(got, tt.want) {
				t.Errorf("conns() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLineProtocolFields(t *testing.T) {
	tests := []struct {
		name, line string
		want       []string
		err        bool
	}{
		{"metric", "modbus,device=press-000-001,slave_id=1 pump_on=true,cycle_count=12i,pressure=1.5 1796089930001000000\n", []string{"pump_on", "cycle_count", "pressure"}, false},
		{"no fields", "modbus,device=x", nil, true},
		{"field without value", "modbus a,b=1 1", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := lineProtocolFields(tt.line)
			if (err != nil) != tt.err || !slices.Equal(got, tt.want) {
				t.Errorf("lineProtocolFields() = %v, %v; want %v, error %v", got, err, tt.want, tt.err)
			}
		})
	}
}
