// Command demo runs the whole factorywire pipeline in one process on
// embedded defaults: our broker, simulated factories (3 factories × press
// and power-meter × 20 devices), a gateway per factory, and the sink writing
// into MongoDB at MONGODB_URI or, without it, into an embedded FerretDB
// stand-in. Every few seconds it prints samples polled, produced and stored,
// the sink's lag and the poll-to-stored latency; Ctrl-C stops everything.
//
//	go run ./cmd/demo [--factories 3] [--devices 20] [--interval 1s] [--mongodb-uri URI] [--data-dir DIR]
//
// Every flag has an environment twin FACTORYWIRE_DEMO_<FLAG>; --mongodb-uri
// also reads MONGODB_URI. Exit status: 0 after Ctrl-C, 1 on failure, 2 for a
// usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/peterbourgon/ff/v3"

	"github.com/factorywire/factorywire/internal/cli"
	"github.com/factorywire/factorywire/internal/demo"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	var (
		factories = fs.Int("factories", 3, "simulated factories")
		devs      = fs.Int("devices", 20, "devices of each class per factory")
		classes   = fs.String("classes", "press,power-meter", "device classes (files in --classes-dir)")
		classDir  = fs.String("classes-dir", "configs/devices", "register maps")
		interval  = fs.Duration("interval", time.Second, "poll interval of every device")
		mongoURI  = fs.String("mongodb-uri", os.Getenv("MONGODB_URI"), "MongoDB to write to (default $MONGODB_URI; empty: the embedded stand-in)")
		dataDir   = fs.String("data-dir", "", "where the broker, spools and stand-in keep their files (default: a temporary directory, removed at exit)")
		listen    = fs.String("listen", "127.0.0.1:9092", "the broker's address (127.0.0.1:0 for any free port)")
		report    = fs.Duration("report", 5*time.Second, "how often to print the figures")
		logLevel  = fs.String("log-level", "warn", "debug, info, warn or error")
	)
	if err := ff.Parse(fs, args, ff.WithEnvVarPrefix("FACTORYWIRE_DEMO")); err != nil {
		return err
	}
	logger, err := cli.Logger(*logLevel)
	if err != nil {
		return err
	}
	d, err := demo.Start(demo.Config{
		DataDir: *dataDir, ClassesDir: *classDir, Factories: *factories, Classes: strings.Split(*classes, ","),
		Devices: *devs, Interval: *interval, BrokerListen: *listen, MongoURI: *mongoURI, Logger: logger,
	})
	if err != nil {
		return err
	}
	cfg := d.Config()
	fmt.Printf("factorywire demo: %d factories × %d classes × %d devices, polled every %s\n", cfg.Factories, len(cfg.Classes), cfg.Devices, cfg.Interval)
	fmt.Printf("  broker   %s (any Kafka client: kcat -b %s -L)\n", d.BrokerAddr(), d.BrokerAddr())
	if d.StandIn() {
		fmt.Printf("  MongoDB  the embedded FerretDB stand-in at %s: NO time-series collections, no TTL,\n", d.MongoURI())
		fmt.Printf("           no $dateTrunc/$avg: set MONGODB_URI to write to a real MongoDB 6.0+\n")
	} else {
		fmt.Printf("  MongoDB  %s, database %s (time-series collections)\n", d.MongoURI(), cfg.Database)
	}
	fmt.Printf("  data     %s\n", cfg.DataDir)
	fmt.Printf("  topics   %s\n\n", strings.Join(d.Topics, ", "))
	fmt.Println("Try, while it runs:")
	uri := d.MongoURI()
	fmt.Printf("  go run ./cmd/broker topics list --brokers %s\n", d.BrokerAddr())
	fmt.Printf("  go run ./cmd/broker groups lag --brokers %s --group factorywire-sink\n", d.BrokerAddr())
	fmt.Printf("  go run ./cmd/sink query range --config configs/sink.yaml --mongodb-uri %s --factory %s --class %s --device %s-01 --from 1m\n", uri, demo.Factory(0), cfg.Classes[0], cfg.Classes[0])
	if d.StandIn() {
		fmt.Println("  (sink query latest and window need a real MongoDB: the stand-in lacks $first and $dateTrunc)")
	} else {
		fmt.Printf("  go run ./cmd/sink query latest --config configs/sink.yaml --mongodb-uri %s --factory %s --class %s\n", uri, demo.Factory(0), cfg.Classes[0])
		fmt.Printf("  go run ./cmd/sink query window --config configs/sink.yaml --mongodb-uri %s --factory %s --class %s --device %s-01 --field pressure --from 10m --unit minute\n", uri, demo.Factory(0), cfg.Classes[0], cfg.Classes[0])
	}
	fmt.Println("Ctrl-C stops everything. p50 and p99: poll to stored document, over each interval.")
	fmt.Println()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	tick := time.NewTicker(*report)
	defer tick.Stop()
	start, prev := time.Now(), d.Stats()
	fmt.Printf("%8s  %10s  %10s  %10s  %8s  %10s  %10s  %8s\n", "elapsed", "polled", "produced", "stored", "lag", "p50", "p99", "stored/s")
	for {
		select {
		case <-ctx.Done():
			fmt.Println("\nstopping: gateways forward their spools, the sink commits, then everything closes")
			return d.Close()
		case <-tick.C:
			s := d.Stats()
			rate := float64(s.Stored-prev.Stored) / report.Seconds()
			p50, p99 := "-", "-"
			if q, ok := s.Delays(prev, 0.50); ok {
				p50 = q.Round(time.Millisecond).String()
			}
			if q, ok := s.Delays(prev, 0.99); ok {
				p99 = q.Round(time.Millisecond).String()
			}
			fmt.Printf("%8s  %10d  %10d  %10d  %8d  %10s  %10s  %8.0f\n", time.Since(start).Round(time.Second), s.Polled, s.Produced, s.Stored, s.Lag, p50, p99, rate)
			prev = s
		}
	}
}
