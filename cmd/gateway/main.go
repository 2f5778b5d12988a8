// Command gateway polls Modbus devices and produces their samples to a
// Kafka-protocol broker through a durable local spool.
//
//	gateway run   --config configs/gateway.yaml [--brokers host:port,...] [--data-dir DIR] [--log-level info] [--log-format text|json]
//	gateway check --config configs/gateway.yaml
//	gateway probe --config configs/gateway.yaml --device press-01 [--format json]
//	gateway probe --address 10.20.1.10:502 --unit 3 --class press [--classes-dir configs/devices]
//	gateway probe --transport rtu --address /dev/ttyUSB0 --baud-rate 9600 --parity N --stop-bits 2 --unit 10 --class temperature-controller
//	gateway simulate --listen 127.0.0.1:5020 --device 1=press --device 2=power-meter [--fault unit=1,kind=exception,exception=2]
//	gateway simulate --serial /dev/ttyUSB0 --baud-rate 9600 --parity N --stop-bits 2 --devices 2 --classes press
//	gateway import-telegraf [--out DIR [--force]] [--format json] [--factory plant-a] telegraf.conf
//
// run polls and forwards until SIGINT or SIGTERM. SIGHUP reloads the config
// file and the register maps (gateway.Gateway.Reload): devices and
// connections that changed restart, the others poll on undisturbed; a
// config that fails its check is logged and the running one stays; keys
// that need a restart (kafka, spool, data_dir...) are logged and keep
// their values. systemd: ExecReload=/bin/kill -HUP $MAINPID.
//
// check validates the config and the register maps and prints the read plan
// of every device class and the topics the gateway writes, without
// connecting to anything.
//
// probe reads one device once, as telegraf --test does, through the same
// devices/modbus connection and poll code as run (modbus.Probe), and prints
// every field of its class with its value and unit, and each read's raw
// reply (registers in hex, bits as 0/1) with its address range and
// Modicon references; --format json prints the same with stable
// snake_case keys. The device is one of a config's (--config, --device) or
// described by flags named as the keys of a connections entry (--transport,
// --address, --baud-rate, --data-bits, --parity, --stop-bits, --timeout)
// plus --unit, --class and --classes-dir (default configs/devices), so a
// line of the config carries over as it is and is checked by the same
// rules. Nothing is produced to Kafka and no spool is opened. It exits 0
// when every read succeeded and 1 when one failed, with the Modbus error
// (exception code and name, timeout, connect error) and where: connection,
// address, unit and register range.
//
// simulate serves simulated devices (devices/simulator) of the register
// maps in --classes-dir over Modbus TCP (--listen) or RTU (--serial), with
// the simulator's fault injection (--fault), printing the address it
// serves and the unit -> class table, until SIGINT or SIGTERM.
//
// import-telegraf turns the [[inputs.modbus]] sections of a Telegraf config
// into a gateway config and register maps (gateway/telegraf), with a report
// naming the Telegraf file and line of every setting not carried over, or
// carried over with a difference. It exits 0 when everything was carried
// over, 3 when the files were produced with warnings, 1 when nothing was
// importable.
//
// Every flag has an environment twin:
// FACTORYWIRE_GATEWAY_ and the flag name in upper case with '-' as '_'
// (FACTORYWIRE_GATEWAY_CONFIG). Flags win over the environment, which wins
// over the file. Exit status: 0 after a clean stop, 1 when the gateway fails,
// 2 for a usage or configuration error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/factorywire/factorywire/gateway"
	"github.com/factorywire/factorywire/internal/cli"
)

const envPrefix = "FACTORYWIRE_GATEWAY"

// usageError marks errors that exit with status 2.
type usageError = cli.UsageError

func main() { cli.Main("gateway", run) }

func run(args []string, stdout io.Writer) error {
	root := &ffcli.Command{
		Name:        "gateway",
		ShortUsage:  "gateway <subcommand> [flags]",
		ShortHelp:   "poll Modbus devices into Kafka through a durable spool",
		Subcommands: []*ffcli.Command{runCommand(), checkCommand(stdout), probeCommand(stdout), simulateCommand(stdout), importTelegrafCommand(stdout, os.Stderr)},
		Exec: func(context.Context, []string) error {
			return usageError{Err: errors.New("missing subcommand: try 'gateway run --help', 'gateway check --help', 'gateway probe --help', 'gateway simulate --help' or 'gateway import-telegraf --help'")}
		},
	}
	return cli.Run(root, args)
}

// flags are the flags both subcommands share.
type flags struct {
	config  *string
	brokers *string
	dataDir *string
}

func addFlags(fs *flag.FlagSet) flags {
	return flags{
		config:  fs.String("config", "", "YAML config file (see configs/gateway.yaml); required"),
		brokers: fs.String("brokers", "", "seed brokers, host:port,... (overrides kafka.brokers)"),
		dataDir: fs.String("data-dir", "", "where the spool lives (overrides data_dir)"),
	}
}

// load reads the config file and applies the flags that were set.
func (f flags) load(fs *flag.FlagSet) (gateway.Config, error) {
	if *f.config == "" {
		return gateway.Config{}, usageError{Err: errors.New("--config FILE is required")}
	}
	cfg, err := gateway.LoadConfig(*f.config)
	if err != nil {
		return gateway.Config{}, usageError{Err: err}
	}
	fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "brokers":
			cfg.Kafka.Brokers = strings.Split(*f.brokers, ",")
		case "data-dir":
			cfg.DataDir = *f.dataDir
		}
	})
	return cfg, nil
}

func runCommand() *ffcli.Command {
	fs := flag.NewFlagSet("gateway run", flag.ContinueOnError)
	f := addFlags(fs)
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logFormat := fs.String("log-format", "text", cli.LogFormatUsage)
	return &ffcli.Command{
		Name:       "run",
		ShortUsage: "gateway run --config FILE [flags]",
		ShortHelp:  "poll and forward until SIGINT or SIGTERM; SIGHUP reloads the config",
		FlagSet:    fs,
		Options:    []ff.Option{ff.WithEnvVarPrefix(envPrefix)},
		Exec: func(ctx context.Context, _ []string) error {
			// Before anything else: SIGHUP's default action ends the
			// process. One that comes before Run is applied when the
			// gateway is built.
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			logger, err := cli.Logger(*logLevel, *logFormat)
			if err != nil {
				return err
			}
			cfg, err := f.load(fs)
			if err != nil {
				return err
			}
			g, err := gateway.New(cfg, logger)
			var ce *gateway.ConfigError
			if errors.As(err, &ce) {
				return usageError{Err: fmt.Errorf("%s: %w", *f.config, ce.Err)}
			}
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			// One goroutine reloads, so SIGHUPs are applied one after
			// the other (and Reload serialises anyway); those that come
			// during a reload make one more.
			reloading := make(chan struct{})
			go func() {
				defer close(reloading)
				for {
					select {
					case <-hup:
						logger.Info("SIGHUP: reloading the configuration", "config", *f.config)
						g.Reload(*f.config, func() (gateway.Config, error) { return f.load(fs) }) // logs its outcome
					case <-ctx.Done():
						return
					}
				}
			}()
			err = g.Run(ctx)
			stop()
			<-reloading
			logger.Info("gateway stopped")
			return err
		},
	}
}

func checkCommand(stdout io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("gateway check", flag.ContinueOnError)
	f := addFlags(fs)
	return &ffcli.Command{
		Name:       "check",
		ShortUsage: "gateway check --config FILE",
		ShortHelp:  "validate the config and print the read plans and topics",
		FlagSet:    fs,
		Options:    []ff.Option{ff.WithEnvVarPrefix(envPrefix)},
		Exec: func(_ context.Context, _ []string) error {
			cfg, err := f.load(fs)
			if err != nil {
				return err
			}
			plan, err := gateway.Check(cfg)
			if err != nil {
				return usageError{Err: fmt.Errorf("%s: %w", *f.config, err)}
			}
			printPlan(stdout, cfg, plan)
			return nil
		},
	}
}

func printPlan(w io.Writer, cfg gateway.Config, plan gateway.Plan) {
	fmt.Fprintf(w, "factory %s: %d devices on %d connections, spool %s (max %d bytes, when full: %s)\n\n",
		cfg.Factory, len(cfg.Devices), len(cfg.Connections), cfg.DataDir, cfg.Spool.MaxBytes, cfg.Spool.WhenFull)
	fmt.Fprintf(w, "kafka: %s; %s\n\n", strings.Join(cfg.Kafka.Brokers, ","), cfg.Kafka.Describe())
	fmt.Fprintln(w, "topics:")
	for _, t := range plan.Topics {
		fmt.Fprintf(w, "  %s\n", t)
	}
	fmt.Fprintln(w, "\nread plans:")
	for _, c := range plan.Classes {
		fmt.Fprintf(w, "  class %s (%s), %d fields:\n", c.Name, c.Source, len(c.Fields))
		for _, line := range strings.Split(strings.TrimRight(c.Plan.String(), "\n"), "\n") {
			fmt.Fprintf(w, "    %s\n", line)
		}
	}
	fmt.Fprintln(w, "\ndevices:")
	ids := make([]string, 0, len(plan.Devices))
	for id := range plan.Devices {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	byID := map[string]gateway.DeviceConfig{}
	for _, d := range cfg.Devices {
		byID[d.ID] = d
	}
	for _, id := range ids {
		d := byID[id]
		unit := 1
		if d.Unit != nil {
			unit = int(*d.Unit)
		}
		rbe := ""
		if e, ok := plan.Exceptions[id]; ok {
			rbe = ", " + e
		}
		fmt.Fprintf(w, "  %-24s %-24s %s unit %d, %s%s\n", id, plan.Devices[id], d.Connection, unit, d.Schedule.String(), rbe)
	}
}
