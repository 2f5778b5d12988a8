package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/devices/simulator"
	"github.com/factorywire/factorywire/internal/cli"
)

const simulateHelp = `simulate serves simulated Modbus devices, whose values follow generators
(devices/simulator), from the register maps in --classes-dir: on the TCP
address --listen (default 127.0.0.1:5020), on the serial device --serial, or
both. --transport names what a gateway connects with, as the transport key of
its connections: tcp (Modbus TCP, the default), rtu_over_tcp or ascii_over_tcp
(RTU or ASCII framing over TCP, as a serial device server in raw mode passes
it) on --listen; rtu (the default with --serial alone) or ascii on --serial.
With both --listen and --serial, the other one speaks tcp or rtu. It prints
what it serves where and the unit -> class table, then serves until SIGINT or
SIGTERM.

  gateway simulate --device 1=press --device 2=power-meter
  gateway simulate --devices 3 --classes press,power-meter     (units 1-3 press, 4-6 power-meter)
  gateway simulate --transport rtu_over_tcp --listen 127.0.0.1:4001 --device 1=press
  gateway simulate --serial /dev/ttyUSB0 --baud-rate 9600 --parity N --stop-bits 2 --device 10=temperature-controller
  gateway simulate --serial /dev/ttyUSB1 --transport ascii --device 3=power-meter   (7E1 by default)

Faults (repeatable --fault) are key=value lists naming the simulator's Fault
fields; without unit= a fault applies to every unit:

  --fault unit=1,kind=exception,exception=2,function=3,address=10,count=1
  --fault kind=delay,delay=500ms,every=3
  --fault unit=2,kind=no-reply,probability=0.1,seed=1
  --fault kind=drop,times=1

kinds: delay, exception, short-reply, wrong-transaction-id, drop, no-reply;
other keys: function, address, count, every, probability, seed, times, delay,
exception (a code or a name: server-device-busy).

Every flag has an environment twin: FACTORYWIRE_GATEWAY_ and the flag in upper
case with '-' as '_' (FACTORYWIRE_GATEWAY_LISTEN).`

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func simulateCommand(stdout io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("gateway simulate", flag.ContinueOnError)
	listen := fs.String("listen", "", "TCP address to serve on (default 127.0.0.1:5020 without --serial; :0 picks a free port)")
	serialDev := fs.String("serial", "", "serial device to serve Modbus RTU or ASCII on (/dev/ttyUSB0)")
	transport := fs.String("transport", "", "tcp (default), rtu_over_tcp or ascii_over_tcp on --listen; rtu (default with --serial alone) or ascii on --serial")
	baudRate := fs.Int("baud-rate", 0, "with --serial: bit/s (default 19200)")
	dataBits := fs.Int("data-bits", 0, "with --serial: 7 or 8 (default 8; 7 with --transport ascii)")
	parity := fs.String("parity", "", "with --serial: N, E or O (default E)")
	stopBits := fs.Int("stop-bits", 0, "with --serial: 1 or 2 (default 1)")
	classesDir := fs.String("classes-dir", "configs/devices", "the register maps")
	var devs, faults listFlag
	fs.Var(&devs, "device", "UNIT=CLASS: serve a device of the class as that unit (repeatable)")
	count := fs.Int("devices", 0, "with --classes: this many devices of each class, units from 1 up")
	classList := fs.String("classes", "", "with --devices: classes, comma separated")
	fs.Var(&faults, "fault", "a fault to inject, key=value,... (repeatable; see --help)")
	seed := fs.Uint64("seed", 0, "seed base: the device of unit U has seed SEED+U")
	tick := fs.Duration("tick-period", 100*time.Millisecond, "how often generated values change")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logFormat := fs.String("log-format", "text", cli.LogFormatUsage)
	return &ffcli.Command{
		Name:       "simulate",
		ShortUsage: "gateway simulate (--device UNIT=CLASS ... | --devices N --classes A,B) [--listen ADDR] [--serial DEV ...] [--transport T] [--fault SPEC ...]",
		ShortHelp:  "serve simulated Modbus devices over TCP, RTU or ASCII until SIGINT or SIGTERM",
		LongHelp:   simulateHelp,
		FlagSet:    fs,
		Options:    []ff.Option{ff.WithEnvVarPrefix(envPrefix)},
		Exec: func(ctx context.Context, _ []string) error {
			logger, err := cli.Logger(*logLevel, *logFormat)
			if err != nil {
				return err
			}
			if *tick <= 0 {
				return usageError{Err: fmt.Errorf("--tick-period %v: want a positive duration", *tick)}
			}
			units, err := simulatedUnits(*classesDir, devs, *count, *classList)
			if err != nil {
				return usageError{Err: err}
			}
			type unitFault struct {
				unit  int
				fault simulator.Fault
				text  string
			}
			var parsed []unitFault
			for _, text := range faults {
				u, f, err := simulator.ParseFault(text)
				if err != nil {
					return usageError{Err: fmt.Errorf("--fault: %w", err)}
				}
				if _, ok := units[uint8(u)]; u >= 0 && !ok {
					return usageError{Err: fmt.Errorf("--fault %q: no device is unit %d", text, u)}
				}
				parsed = append(parsed, unitFault{u, f, text})
			}
			tcpName, tcpFraming, serialName, serialFraming, err := simulatedTransports(*transport, *serialDev != "")
			if err != nil {
				return usageError{Err: err}
			}
			addr := *listen
			if addr == "" && (*serialDev == "" || *transport == tcpName) {
				addr = "127.0.0.1:5020"
			}
			s, err := simulator.New(simulator.Config{Listen: addr, NoTCP: addr == "", Framing: tcpFraming, Logger: logger, TickPeriod: *tick})
			if err != nil {
				return err
			}
			defer s.Close()
			ids := make([]int, 0, len(units))
			for u := range units {
				ids = append(ids, int(u))
			}
			sort.Ints(ids)
			for _, u := range ids {
				if _, err := s.AddDevice(uint8(u), simulator.Device{Class: units[uint8(u)], Seed: *seed + uint64(u)}); err != nil {
					return usageError{Err: fmt.Errorf("unit %d: %w", u, err)}
				}
			}
			byUnit := map[int][]simulator.Fault{}
			for _, p := range parsed {
				byUnit[p.unit] = append(byUnit[p.unit], p.fault)
			}
			for u, fl := range byUnit {
				if u < 0 {
					err = s.SetFaults(fl...)
				} else {
					err = s.Unit(uint8(u)).SetFaults(fl...)
				}
				if err != nil {
					return usageError{Err: fmt.Errorf("--fault: %w", err)}
				}
			}

			ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			serialErr := make(chan error, 1)
			if *serialDev != "" {
				sc := simulator.SerialConfig{Device: *serialDev, Framing: serialFraming, BaudRate: *baudRate, DataBits: *dataBits, Parity: *parity, StopBits: *stopBits}
				go func() { serialErr <- s.ServeSerial(ctx, sc) }()
			} else {
				for _, name := range []string{"baud-rate", "data-bits", "parity", "stop-bits"} {
					if f := fs.Lookup(name); f.Value.String() != f.DefValue {
						return usageError{Err: fmt.Errorf("--%s: only with --serial", name)}
					}
				}
			}
			if a := s.Addr(); a != nil {
				fmt.Fprintf(stdout, "simulator: modbus %s on %s\n", tcpName, a)
			}
			if *serialDev != "" {
				fmt.Fprintf(stdout, "simulator: modbus %s on %s\n", serialName, *serialDev)
			}
			tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "UNIT\tCLASS\tSEED\tREGISTER MAP")
			for _, u := range ids {
				c := units[uint8(u)]
				fmt.Fprintf(tw, "%d\t%s\t%d\t%s\n", u, c.Name, *seed+uint64(u), c.Source)
			}
			tw.Flush()
			for _, p := range parsed {
				where := "every unit"
				if p.unit >= 0 {
					where = fmt.Sprintf("unit %d", p.unit)
				}
				fmt.Fprintf(stdout, "fault on %s: %s\n", where, p.text)
			}
			logger.Info("simulator serving; stop with SIGINT or SIGTERM", "units", len(ids))
			select {
			case <-ctx.Done():
			case err := <-serialErr:
				if err != nil {
					return err
				}
			}
			s.Close()
			if *serialDev != "" {
				if err := <-serialErr; err != nil {
					return err
				}
			}
			logger.Info("simulator stopped")
			return nil
		},
	}
}

// simulatedTransports is what --transport (t) makes the TCP listener and
// the serial line speak, named as the gateway's transports and as the
// simulator's framings.
func simulatedTransports(t string, serial bool) (tcpName string, tcpFraming simulator.Framing, serialName string, serialFraming simulator.Framing, err error) {
	tcpName, tcpFraming, serialName, serialFraming = "tcp", simulator.FramingMBAP, "rtu", simulator.FramingRTU
	switch t {
	case "", "tcp", "rtu":
	case "rtu_over_tcp":
		tcpName, tcpFraming = t, simulator.FramingRTU
	case "ascii_over_tcp":
		tcpName, tcpFraming = t, simulator.FramingASCII
	case "ascii":
		serialName, serialFraming = t, simulator.FramingASCII
	default:
		return "", "", "", "", fmt.Errorf("--transport %q: want tcp, rtu_over_tcp, ascii_over_tcp, rtu or ascii", t)
	}
	if (t == "rtu" || t == "ascii") && !serial {
		return "", "", "", "", fmt.Errorf("--transport %s: serves a serial line: give --serial DEV (or a TCP transport: tcp, %s_over_tcp)", t, t)
	}
	return tcpName, tcpFraming, serialName, serialFraming, nil
}

// simulatedUnits is the unit -> class table of --device and --devices
// with --classes.
func simulatedUnits(dir string, devs []string, count int, classList string) (map[uint8]*devices.Class, error) {
	if len(devs) == 0 && count == 0 {
		return nil, errors.New("no devices: give --device UNIT=CLASS (repeatable) or --devices N --classes A,B")
	}
	if (count == 0) != (classList == "") {
		return nil, errors.New("--devices N and --classes A,B go together")
	}
	classes, err := devices.LoadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("--classes-dir: %w", err)
	}
	class := func(name string) (*devices.Class, error) {
		if c := classes[name]; c != nil {
			return c, nil
		}
		return nil, fmt.Errorf("class %q: no register map in %s has that class (have %s)", name, dir, strings.Join(sortedNames(classes), ", "))
	}
	units := map[uint8]*devices.Class{}
	add := func(flag string, unit int, c *devices.Class) error {
		if unit < 1 || unit > 247 {
			return fmt.Errorf("%s: unit %d: want 1 to 247", flag, unit)
		}
		if prev := units[uint8(unit)]; prev != nil {
			return fmt.Errorf("%s: unit %d is already a %s", flag, unit, prev.Name)
		}
		units[uint8(unit)] = c
		return nil
	}
	next := 1
	if count > 0 {
		for _, name := range strings.Split(classList, ",") {
			c, err := class(strings.TrimSpace(name))
			if err != nil {
				return nil, fmt.Errorf("--classes: %w", err)
			}
			for range count {
				if err := add("--devices", next, c); err != nil {
					return nil, err
				}
				next++
			}
		}
	}
	for _, d := range devs {
		u, name, ok := strings.Cut(d, "=")
		n, err := strconv.Atoi(u)
		if !ok || err != nil {
			return nil, fmt.Errorf("--device %q: want UNIT=CLASS, such as 1=press", d)
		}
		c, err := class(name)
		if err != nil {
			return nil, fmt.Errorf("--device %q: %w", d, err)
		}
		if err := add("--device", n, c); err != nil {
			return nil, err
		}
	}
	return units, nil
}
