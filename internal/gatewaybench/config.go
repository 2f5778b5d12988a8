package gatewaybench

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/factorywire/factorywire/gateway"
)

// The parts of a run, as -parts names them.
const (
	partFloor      = "floor"       // the loopback floor and our poller, per CPU core
	partGateway    = "gateway"     // the whole gateway at 1 Hz
	partPollerOnly = "poller-only" // our poller alone at 1 Hz, the gateway's polling cost
	partTelegraf   = "telegraf"    // Telegraf at 1 Hz (needs -telegraf)
)

// The tools of the whole-system runs, as the tables name them.
const (
	toolOurs       = "ours"
	toolPollerOnly = "poller-only"
	toolTelegraf   = "telegraf"
)

// The modes of the floor runs, as the tables name them.
const (
	modeFloor  = "floor"
	modePoller = "poller"
)

// Config is one benchmark run's settings. DefaultConfig gives the defaults
// of a full run (about 10 minutes with Telegraf on a 2-core machine);
// ApplyQuick shrinks every duration and count for a smoke run.
type Config struct {
	// Runs is how many times every whole-system measurement runs; tables
	// show the median. Default 2.
	Runs int
	// Parts selects what runs: floor, gateway, poller-only and telegraf.
	// Default all four (telegraf only with Telegraf set).
	Parts []string

	// FloorRuns is how many times the floor and the poller run, back to
	// back, per connection count. Their CPU cost per request swings with
	// where the scheduler puts client and simulator, so short paired runs
	// say more than long ones. Default 5.
	FloorRuns int
	// FloorConns are the connections (one goroutine each) of the floor
	// and poller runs, one measurement per value. Default 1 and 4.
	FloorConns []int
	// FloorDuration is the measured window of each floor and poller
	// run, after FloorWarmup. Default 5s and 1s.
	FloorDuration, FloorWarmup time.Duration
	// PollerDevices is how many devices each poller connection holds,
	// on units 1..UnitsPerConn over and over, all every 100 ms (the
	// shortest interval): far more than a connection can poll, so the
	// poller runs flat out. Default 2000 (20,000 polls/s asked of each
	// connection).
	PollerDevices int

	// Devices are the device counts of the whole-system runs, each polled
	// every second. Default 1,000 and 10,000.
	Devices []int
	// UnitsPerConn is how many units (devices) sit behind one Modbus TCP
	// connection, as behind a TCP-to-RS485 gateway. Default 200.
	UnitsPerConn int
	// ConnsPerSim is the most connections one simulator process serves;
	// more connections start more simulator processes. Default 25.
	ConnsPerSim int
	// Warmup is how long a whole-system run polls after its first sample
	// reached the broker before the window starts. Default 10s.
	Warmup time.Duration
	// Window is the measured part of a whole-system run. Default 30s.
	Window time.Duration
	// Drain is how long a tool goes on after the window before the
	// window's samples are read back from the broker: Telegraf flushes
	// every second. Default 3s.
	Drain time.Duration
	// SpoolSync is our gateway's spool.sync: "always" (the gateway's
	// default) or "interval". Default: the gateway's default.
	SpoolSync string
	// StartTimeout bounds how long a tool may take from its start to the
	// first sample at the broker. Default 2m.
	StartTimeout time.Duration

	// Gateway is our gateway in the whole-system runs: GatewayBuild (the
	// default) builds cmd/gateway with the go command and runs that
	// binary, the program users deploy, as Telegraf runs its own;
	// GatewaySelf runs this binary's built-in gateway role (the same
	// gateway package, in a binary that also holds the broker, the
	// simulator and this benchmark); anything else is the path of a
	// cmd/gateway binary. The poller-only runs always use the built-in role.
	Gateway string

	// Telegraf is the path of a telegraf binary built with
	//   go install -tags custom,inputs.modbus,outputs.kafka,outputs.file github.com/influxdata/telegraf/cmd/telegraf@v1.37.2
	// Empty skips the Telegraf runs.
	Telegraf string

	// QuietCores leaves out of the medians every run during which other
	// processes used more than this many cores (measured from /proc/stat),
	// unless no run of that kind was that quiet. Default 0.25.
	QuietCores float64
	// Out is a file to write the markdown report to, besides stdout.
	Out string
	// Dir is where the temporary directories go. Default: the system temp
	// dir.
	Dir string
	// Quick shrinks every duration and count for a smoke run.
	Quick bool
	// CPUProfileDir, when set, makes this process write CPU profiles of
	// the first floor and poller windows, and every built-in gateway or
	// poller child (not a deployed gateway, see Gateway) a CPU profile of
	// its life, into this directory (hidden flag).
	CPUProfileDir string

	// CommandLine is the invocation, echoed in the report.
	CommandLine string
}

// DefaultConfig returns the settings of a full run, those of
// `go run ./cmd/gatewaybench` without flags.
func DefaultConfig() Config {
	return Config{
		Runs:          2,
		Parts:         []string{partFloor, partGateway, partPollerOnly, partTelegraf},
		FloorRuns:     5,
		FloorConns:    []int{1, 4},
		FloorDuration: 5 * time.Second,
		FloorWarmup:   time.Second,
		PollerDevices: 2000,
		Devices:       []int{1000, 10000},
		UnitsPerConn:  200,
		ConnsPerSim:   25,
		Warmup:        10 * time.Second,
		Window:        30 * time.Second,
		Drain:         3 * time.Second,
		SpoolSync:     gateway.DefaultConfig().Spool.Sync,
		Gateway:       GatewayBuild,
		StartTimeout:  2 * time.Minute,
		QuietCores:    0.25,
		Dir:           os.TempDir(),
	}
}

// ApplyQuick shrinks the settings whose flags the user did not set: set
// names the flags given (benchkit.Command.Parse returns them).
func (c *Config) ApplyQuick(set map[string]bool) {
	quick := map[string]func(){
		"runs":           func() { c.Runs = 1 },
		"floor-runs":     func() { c.FloorRuns = 1 },
		"floor-conns":    func() { c.FloorConns = []int{2} },
		"floor-duration": func() { c.FloorDuration = time.Second },
		"floor-warmup":   func() { c.FloorWarmup = 200 * time.Millisecond },
		"poller-devices": func() { c.PollerDevices = 50 },
		"devices":        func() { c.Devices = []int{20} },
		"units-per-conn": func() { c.UnitsPerConn = 10 },
		"warmup":         func() { c.Warmup = 500 * time.Millisecond },
		"window":         func() { c.Window = 2 * time.Second },
		"drain":          func() { c.Drain = 1500 * time.Millisecond },
	}
	for name, apply := range quick {
		if !set[name] {
			apply()
		}
	}
}

// Validate reports the first invalid setting, naming its flag.
func (c *Config) Validate() error {
	switch {
	case c.Runs < 1 || c.Runs > 100:
		return fmt.Errorf("-runs %d: must be within [1, 100]", c.Runs)
	case c.FloorRuns < 1 || c.FloorRuns > 100:
		return fmt.Errorf("-floor-runs %d: must be within [1, 100]", c.FloorRuns)
	case len(c.Parts) == 0:
		return fmt.Errorf("-parts: name at least one of floor, gateway, poller-only, telegraf")
	case c.FloorDuration < 100*time.Millisecond || c.FloorDuration > time.Hour:
		return fmt.Errorf("-floor-duration %v: must be within [100ms, 1h]", c.FloorDuration)
	case c.FloorWarmup < 0 || c.FloorWarmup > time.Hour:
		return fmt.Errorf("-floor-warmup %v: must be within [0, 1h]", c.FloorWarmup)
	case c.PollerDevices < 1 || c.PollerDevices > 100_000:
		return fmt.Errorf("-poller-devices %d: must be within [1, 100000]", c.PollerDevices)
	case c.SpoolSync != gateway.SyncInterval && c.SpoolSync != gateway.SyncAlways:
		return fmt.Errorf("-spool-sync %q: want %s or %s", c.SpoolSync, gateway.SyncInterval, gateway.SyncAlways)
	case c.UnitsPerConn < 1 || c.UnitsPerConn > 247:
		return fmt.Errorf("-units-per-conn %d: must be within [1, 247] (Modbus unit ids behind a gateway)", c.UnitsPerConn)
	case c.ConnsPerSim < 1 || c.ConnsPerSim > 10_000:
		return fmt.Errorf("-conns-per-sim %d: must be within [1, 10000]", c.ConnsPerSim)
	case c.Warmup < 0 || c.Warmup > time.Hour:
		return fmt.Errorf("-warmup %v: must be within [0, 1h]", c.Warmup)
	case c.Window < time.Second || c.Window > time.Hour:
		return fmt.Errorf("-window %v: must be within [1s, 1h]", c.Window)
	case c.Drain < 0 || c.Drain > time.Hour:
		return fmt.Errorf("-drain %v: must be within [0, 1h]", c.Drain)
	case c.StartTimeout < time.Second:
		return fmt.Errorf("-start-timeout %v: must be at least 1s", c.StartTimeout)
	case c.QuietCores < 0:
		return fmt.Errorf("-quiet-cores %v: must not be negative", c.QuietCores)
	case c.Gateway == "":
		return fmt.Errorf("-gateway: want %s, %s or the path of a cmd/gateway binary", GatewayBuild, GatewaySelf)
	case c.Dir == "":
		return fmt.Errorf("-dir: must not be empty")
	}
	for _, p := range c.Parts {
		if p != partFloor && p != partGateway && p != partPollerOnly && p != partTelegraf {
			return fmt.Errorf("-parts %q: %q is not one of floor, gateway, poller-only, telegraf", strings.Join(c.Parts, ","), p)
		}
	}
	if c.wants(partFloor) && len(c.FloorConns) == 0 {
		return fmt.Errorf("-floor-conns: name at least one connection count")
	}
	for _, n := range c.FloorConns {
		if n < 1 || n > 1000 {
			return fmt.Errorf("-floor-conns: %d must be within [1, 1000]", n)
		}
	}
	if (c.wants(partGateway) || c.wants(partPollerOnly) || c.wants(partTelegraf)) && len(c.Devices) == 0 {
		return fmt.Errorf("-devices: name at least one device count")
	}
	for _, n := range c.Devices {
		if n < 1 || n > 100_000 {
			return fmt.Errorf("-devices: %d must be within [1, 100000]", n)
		}
	}
	if c.Telegraf != "" {
		if st, err := os.Stat(c.Telegraf); err != nil || st.IsDir() {
			return fmt.Errorf("-telegraf %q: not a file (build it as docs/BENCHMARKS.md says)", c.Telegraf)
		}
	}
	if st, err := os.Stat(c.Dir); err != nil || !st.IsDir() {
		return fmt.Errorf("-dir %q: not a directory", c.Dir)
	}
	return nil
}

// wants reports whether -parts selects part.
func (c *Config) wants(part string) bool { return slices.Contains(c.Parts, part) }

// tools returns the whole-system tools to run, in the order of the first
// run, and why Telegraf is left out if it is.
func (c *Config) tools() (tools []string, skipped string) {
	if c.wants(partGateway) {
		tools = append(tools, toolOurs)
	}
	if c.wants(partPollerOnly) {
		tools = append(tools, toolPollerOnly)
	}
	if c.wants(partTelegraf) {
		if c.Telegraf == "" {
			skipped = "no -telegraf binary given"
		} else {
			tools = append(tools, toolTelegraf)
		}
	}
	return tools, skipped
}

// logf writes a progress line.
func logf(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}
