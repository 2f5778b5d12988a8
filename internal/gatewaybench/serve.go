package gatewaybench

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/factorywire/factorywire/broker"
	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/devices/modbus"
	"github.com/factorywire/factorywire/devices/simulator"
	"github.com/factorywire/factorywire/gateway"
	"github.com/factorywire/factorywire/internal/benchkit"
)

// ChildEnv names the role a child process plays (roleSim, roleBroker,
// roleGateway, rolePoller; ServeChild plays it); without it the binary
// runs the benchmark. Run starts its children by re-executing the running
// binary (os.Executable), so every binary that calls Run must check
// ChildEnv first: cmd/gatewaybench's main, and this package's test binary
// (see TestMain). An environment variable rather than a subcommand, so
// that a test binary can play the children too.
const ChildEnv = "GATEWAYBENCH_CHILD"

// The roles of a child process.
const (
	roleSim     = "sim"     // a Modbus TCP simulator serving press devices
	roleBroker  = "broker"  // our broker
	roleGateway = "gateway" // our gateway, polling the simulators into the broker
	rolePoller  = "poller"  // our poller alone, polling the simulators into nothing
)

// The child protocol: a child prints "ADDR host:port" on stdout once it
// listens, then answers each command line on its stdin ("stats") with one
// "REPLY <json>" line. It stops on SIGTERM, SIGINT or the end of stdin
// (the parent closing its end or dying).
const (
	addrPrefix  = benchkit.AddrPrefix
	replyPrefix = benchkit.ReplyPrefix
)

// ServeChild runs the child of the given role (ChildEnv's value) with
// args, as startRole passes them, and returns its exit status.
func ServeChild(role string, args []string) int {
	var err error
	switch role {
	case roleSim:
		err = serveSim(args)
	case roleBroker:
		err = serveBroker(args)
	case roleGateway:
		err = serveGateway(args, false)
	case rolePoller:
		err = serveGateway(args, true)
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "gatewaybench %s: %v\n", role, err)
		return 1
	}
	return 0
}

// serveCommands answers command lines from stdin with answer until stdin
// ends, a stop signal arrives or done (if not nil) is closed.
func serveCommands(answer func(cmd string) any, done <-chan struct{}) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(sig)
	eof := make(chan struct{})
	go func() {
		defer close(eof)
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			var reply any = map[string]string{"error": "no commands"}
			if answer != nil {
				reply = answer(strings.TrimSpace(sc.Text()))
			}
			b, err := json.Marshal(reply)
			if err != nil {
				b, _ = json.Marshal(map[string]string{"error": err.Error()})
			}
			fmt.Printf("%s%s\n", replyPrefix, b)
		}
	}()
	select {
	case <-sig:
	case <-eof:
	case <-done:
	}
}

// simStats is a simulator's reply to "stats".
type simStats struct {
	Connections uint64 `json:"connections"`
	Requests    uint64 `json:"requests"`
	Replies     uint64 `json:"replies"`
	Exceptions  uint64 `json:"exceptions"`
	BadFrames   uint64 `json:"bad_frames"`
}

// serveSim is `sim -units N -seed S`: a simulator on 127.0.0.1 serving the
// bench class on units 1..N, device seeds S+1..S+N.
func serveSim(args []string) error {
	fs := flag.NewFlagSet("gatewaybench sim", flag.ContinueOnError)
	units := fs.Int("units", 1, "units 1..N")
	seed := fs.Uint64("seed", 0, "seed base")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *units < 1 || *units > 247 {
		return fmt.Errorf("-units %d: must be within [1, 247]", *units)
	}
	class, err := benchClass()
	if err != nil {
		return err
	}
	s, err := simulator.New(simulator.Config{Listen: "127.0.0.1:0", Logger: warnLogger()})
	if err != nil {
		return err
	}
	defer s.Close()
	for u := 1; u <= *units; u++ {
		if _, err := s.AddDevice(uint8(u), simulator.Device{Class: class, Seed: *seed + uint64(u)}); err != nil {
			return err
		}
	}
	fmt.Printf("%s%s\n", addrPrefix, s.Addr())
	serveCommands(func(string) any {
		st := s.Stats()
		out := simStats{Connections: st.Connections, Replies: st.Replies, BadFrames: st.BadFrames}
		for _, n := range st.Requests {
			out.Requests += n
		}
		for _, n := range st.Exceptions {
			out.Exceptions += n
		}
		return out
	}, nil)
	return s.Close()
}

// serveBroker is `broker -dir D`: our broker with its defaults (fsync before
// every acknowledgement) on 127.0.0.1.
func serveBroker(args []string) error {
	fs := flag.NewFlagSet("gatewaybench broker", flag.ContinueOnError)
	dir := fs.String("dir", "", "data directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := broker.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = *dir
	cfg.Logger = warnLogger()
	b, err := broker.New(cfg)
	if err != nil {
		return err
	}
	fmt.Printf("%s%s\n", addrPrefix, b.Addr())
	serveCommands(nil, nil)
	return b.Close()
}

// gatewayStats is a gateway's reply to "stats": sums over its devices'
// health, and the spread of samples per device since the previous stats.
type gatewayStats struct {
	Devices    int    `json:"devices"`
	Polls      uint64 `json:"polls"`
	Samples    uint64 `json:"samples"`
	Failures   uint64 `json:"failures"`
	Overruns   uint64 `json:"overruns"`
	SlowedDown int    `json:"slowed_down"`
	// MinSamples and MaxSamples are the fewest and most samples one device
	// emitted since the previous stats (since the start for the first).
	MinSamples uint64 `json:"min_samples"`
	MaxSamples uint64 `json:"max_samples"`
	LastError  string `json:"last_error,omitempty"` // one device's, if any has one
}

// gatewayLayout is the topology a gateway child polls, also used for
// Telegraf's configuration: devices spread over connections of
// unitsPerConn units each, connection i to simulator i mod len(sims).
type gatewayLayout struct {
	Devices, UnitsPerConn int
	Sims                  []string // simulator addresses
}

// conns returns the units behind each connection: full connections of
// UnitsPerConn, the last one with the rest.
func (l gatewayLayout) conns() []int {
	var out []int
	for left := l.Devices; left > 0; left -= l.UnitsPerConn {
		out = append(out, min(left, l.UnitsPerConn))
	}
	return out
}

// connName and deviceID name connection i and the device on its unit u, the
// same for both tools (Telegraf's device tag is the record key, as ours).
func connName(i int) string          { return fmt.Sprintf("conn-%03d", i) }
func deviceID(conn, unit int) string { return fmt.Sprintf("press-%03d-%03d", conn, unit) }

// gatewayConfig is the configuration of our gateway polling layout l every
// second into broker, as factory, with its spool in dataDir: every other
// setting is gateway.DefaultConfig's.
func gatewayConfig(l gatewayLayout, factory, brokerAddr, dataDir, classesDir, className string) gateway.Config {
	cfg := gateway.DefaultConfig()
	cfg.Factory = factory
	cfg.DataDir = dataDir
	cfg.ClassesDir = classesDir
	cfg.HTTPListen = "127.0.0.1:0"
	cfg.Kafka.Brokers = []string{brokerAddr}
	for i, units := range l.conns() {
		name := connName(i)
		cfg.Connections = append(cfg.Connections, modbus.ConnConfig{Name: name, Address: l.Sims[i%len(l.Sims)]})
		for u := 1; u <= units; u++ {
			unit := uint8(u)
			cfg.Devices = append(cfg.Devices, gateway.DeviceConfig{
				ID: deviceID(i, u), Class: className, Connection: name, Unit: &unit,
				Schedule: modbus.Schedule{Interval: time.Second},
			})
		}
	}
	return cfg
}

// serveGateway is `gateway -devices N -units-per-conn U -sims A,B -broker B
// -factory F -dir D -classes C [-cpuprofile F]`: our gateway, in-process,
// polling layout (N, U, sims) every second. With pollerOnly it runs only the
// gateway's connections and poller (devices/modbus, as gateway.New builds
// them, without the Observer), whose Emit encodes the sample's JSON as the
// spool would and drops it: no spool, no forwarder, no Kafka, no metrics.
func serveGateway(args []string, pollerOnly bool) error {
	fs := flag.NewFlagSet("gatewaybench gateway", flag.ContinueOnError)
	var l gatewayLayout
	fs.IntVar(&l.Devices, "devices", 0, "devices")
	fs.IntVar(&l.UnitsPerConn, "units-per-conn", 200, "units per connection")
	sims := fs.String("sims", "", "simulator addresses, comma separated")
	brokerAddr := fs.String("broker", "", "broker address")
	factory := fs.String("factory", "bench", "factory")
	dir := fs.String("dir", "", "data directory")
	classes := fs.String("classes", "", "register-map directory")
	spoolSync := fs.String("spool-sync", gateway.DefaultConfig().Spool.Sync, "spool.sync")
	profile := fs.String("cpuprofile", "", "write a CPU profile of the gateway's life to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	l.Sims = strings.Split(*sims, ",")
	class, err := benchClass()
	if err != nil {
		return err
	}
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	cfg := gatewayConfig(l, *factory, *brokerAddr, *dir, *classes, class.Name)
	cfg.Spool.Sync = *spoolSync
	var (
		run    func(context.Context) error
		health func() []modbus.DeviceHealth
		addr   string
	)
	if pollerOnly {
		p, closeConns, err := newPollerOnly(cfg, class)
		if err != nil {
			return err
		}
		defer closeConns()
		run, health, addr = p.Run, p.Health, "-"
	} else {
		g, err := gateway.New(cfg, warnLogger())
		if err != nil {
			return err
		}
		run, health, addr = g.Run, g.Health, g.Addr().String()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var runErr error
	stopped := make(chan struct{})
	go func() {
		runErr = run(ctx)
		close(stopped)
	}()
	fmt.Printf("%s%s\n", addrPrefix, addr)

	last := map[string]uint64{}
	serveCommands(func(string) any {
		hs := health()
		devs := make([]deviceStat, len(hs))
		for i, h := range hs {
			devs[i] = deviceStat{ID: h.ID, LastError: h.LastError, SlowedDown: h.SlowedDown,
				Polls: h.Polls, Samples: h.Samples, Failures: h.Failures, Overruns: h.Overruns}
		}
		return sumStats(devs, last)
	}, stopped)
	select {
	case <-stopped:
		return fmt.Errorf("gateway stopped by itself: %v", runErr)
	default:
	}
	cancel()
	<-stopped
	return runErr
}

// warnLogger logs warnings and errors to stderr, which the parent shows
// among its progress lines.
func warnLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// newPollerOnly builds the connections and the poller of cfg as gateway.New
// does, with an Emit that encodes each sample (AppendJSON into a reused
// buffer, as the spool does) and drops it. It returns the function that
// closes the connections.
func newPollerOnly(cfg gateway.Config, class *devices.Class) (*modbus.Poller, func(), error) {
	conns := map[string]*modbus.Conn{}
	closeAll := func() {
		for _, c := range conns {
			c.Close()
		}
	}
	for _, cc := range cfg.Connections {
		c, err := modbus.NewConn(cc.WithDefaults(), modbus.WithLogger(warnLogger()))
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		conns[cc.Name] = c
	}
	devs := make([]modbus.Device, 0, len(cfg.Devices))
	for _, d := range cfg.Devices {
		devs = append(devs, modbus.Device{
			ID: d.ID, Factory: cfg.Factory, Class: class, Conn: conns[d.Connection], Unit: *d.Unit, Schedule: d.Schedule,
		})
	}
	// One buffer, reused, as the spool's group commit encodes every
	// connection's samples into its buffer (Emit runs on each
	// connection's goroutine).
	var (
		mu  sync.Mutex
		buf []byte
	)
	p, err := modbus.NewPoller(cfg.Poller, devs, func(_ context.Context, samples []devices.Sample) error {
		mu.Lock()
		defer mu.Unlock()
		for i := range samples {
			buf = samples[i].AppendJSON(buf[:0])
		}
		return nil
	}, modbus.WithLogger(warnLogger()), modbus.WithValues())
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return p, closeAll, nil
}
