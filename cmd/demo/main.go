// Command demo runs the whole factorywire pipeline in one process on
// embedded defaults: our broker, simulated factories (3 factories × press
// and power-meter × 20 devices), a gateway per factory, and the sink writing
// into MongoDB at MONGODB_URI or, without it, into an embedded FerretDB
// stand-in. Every few seconds it prints samples polled, produced and stored,
// the sink's lag and the poll-to-stored latency; Ctrl-C stops everything.
//
//	go run ./cmd/demo [--factories 3] [--devices 20] [--interval 1s] [--mongodb-uri URI] [--data-dir DIR]
//	go run ./cmd/demo --brokers HOST:PORT[,HOST:PORT...] [--partitions 3] [--replication-factor 3] [--min-insync-replicas 2]
//	go run ./cmd/demo --secure
//
// With --secure the demo runs a secured plant on our broker: it makes a CA,
// the broker's certificate and a password per user in <data-dir>/secure,
// serves SASL_SSL only (SCRAM-SHA-512 over TLS) with ACLs enforced, and
// connects each gateway as gateway-<factory> (allowed to write its
// factory's topics only) and the sink as sink (allowed to read them), the
// users and ACLs created by the admin over the wire.
//
// With --brokers the demo starts no broker: it runs on that existing Kafka
// cluster (Apache Kafka, or any Kafka-compatible one), creates its topics
// there (plant-a.press, … and their .dlq topics, retention 24h) with
// --partitions, --replication-factor and --min-insync-replicas (0: the
// cluster's defaults), and connects every component with --tls,
// --tls-ca-file, --tls-cert-file, --tls-key-file, --tls-server-name,
// --tls-insecure-skip-verify, --sasl-mechanism, --sasl-username and
// --sasl-password-file or --sasl-password-env (the name of the variable
// holding the password: there is no password flag). Without --brokers it
// starts our broker on --listen.
//
// Every flag has an environment twin FACTORYWIRE_DEMO_<FLAG>
// (FACTORYWIRE_DEMO_SASL_PASSWORD_FILE); --mongodb-uri also reads
// MONGODB_URI. Exit status: 0 after Ctrl-C, 1 on failure, 2 for a usage
// error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/peterbourgon/ff/v3"

	"github.com/factorywire/factorywire/internal/cli"
	"github.com/factorywire/factorywire/internal/demo"
	"github.com/factorywire/factorywire/internal/kafkaclient"
)

func main() {
	cli.Main("demo", func(args []string, stdout io.Writer) error {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		return run(ctx, args, stdout)
	})
}

// run parses args, starts the demo, prints its banner and then its figures
// to out every --report until ctx is done, and stops it.
func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	var (
		factories   = fs.Int("factories", 3, "simulated factories")
		devs        = fs.Int("devices", 20, "devices of each class per factory")
		classes     = fs.String("classes", "press,power-meter", "device classes (files in --classes-dir)")
		classDir    = fs.String("classes-dir", "configs/devices", "register maps")
		interval    = fs.Duration("interval", time.Second, "poll interval of every device")
		mongoURI    = fs.String("mongodb-uri", os.Getenv("MONGODB_URI"), "MongoDB to write to (default $MONGODB_URI; empty: the embedded stand-in)")
		dataDir     = fs.String("data-dir", "", "where the broker, spools and stand-in keep their files (default: a temporary directory, removed at exit)")
		listen      = fs.String("listen", "127.0.0.1:9092", "our broker's address (127.0.0.1:0 for any free port); not with --brokers")
		kafka       = cli.AddKafkaFlags(fs, "")
		partitions  = fs.Int("partitions", 3, "partitions of each samples topic")
		replication = fs.Int("replication-factor", 0, "with --brokers: brokers holding each partition of the topics created (0: the cluster's default.replication.factor)")
		minISR      = fs.Int("min-insync-replicas", 0, "with --brokers: min.insync.replicas of the topics (0: the cluster's default)")
		report      = fs.Duration("report", 5*time.Second, "how often to print the figures")
		logLevel    = fs.String("log-level", "warn", "debug, info, warn or error")
		logFormat   = fs.String("log-format", "text", cli.LogFormatUsage)
		secure      = fs.Bool("secure", false, "a secured plant on our broker: SCRAM-SHA-512 over TLS only, ACLs enforced, a user per gateway and for the sink (CA, certificates and passwords made in <data-dir>/secure)")
	)
	if err := ff.Parse(fs, args, ff.WithEnvVarPrefix("FACTORYWIRE_DEMO")); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil // the flag package printed the usage: asked for, not an error
		}
		return cli.UsageError{Err: err}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if err := checkFlags(set, kafka.BrokersSet(), *partitions, *replication, *minISR, *report); err != nil {
		return cli.UsageError{Err: err}
	}
	if *secure && kafka.BrokersSet() {
		return cli.UsageError{Err: errors.New("--secure runs a secured plant on our broker: with --brokers, the existing cluster's own security applies (give its --tls and --sasl flags)")}
	}
	cfg := demo.Config{
		DataDir: *dataDir, ClassesDir: *classDir, Factories: *factories, Classes: strings.Split(*classes, ","),
		Devices: *devs, Interval: *interval, Partitions: int32(*partitions), BrokerListen: *listen, MongoURI: *mongoURI,
		ReplicationFactor: int16(*replication), MinInsyncReplicas: *minISR, Secure: *secure,
	}
	if kafka.BrokersSet() {
		k, err := kafka.Config()
		if err != nil {
			return err
		}
		cfg.Kafka = k
	}
	logger, err := cli.Logger(*logLevel, *logFormat)
	if err != nil {
		return err
	}
	cfg.Logger = logger
	d, err := demo.Start(cfg)
	if errors.Is(err, syscall.EADDRINUSE) && !kafka.BrokersSet() {
		return fmt.Errorf("%w\n(another program, perhaps another demo or a Kafka broker, holds %s: stop it, or run the demo on any free port with --listen 127.0.0.1:0)", err, *listen)
	}
	if err != nil {
		return err
	}
	printBanner(out, d)

	tick := time.NewTicker(*report)
	defer tick.Stop()
	start, prev := time.Now(), d.Stats()
	// Start-up (topics created, the sink's group joined, the first
	// samples waiting for it in every gateway) is left out of the
	// percentiles: they count the samples stored once the sink has
	// caught up with what each gateway had polled when the first sample
	// was stored (demo.Stats.CaughtUp), or, if it never does, from one
	// report interval after the first was stored.
	warm := time.NewTicker(50 * time.Millisecond)
	defer warm.Stop()
	var (
		since       demo.Stats // the percentiles' start, once warmedUp
		warmedUp    bool
		firstStored time.Time
		mark        demo.Stats // when the first sample was stored
	)
	fmt.Fprintf(out, "%8s  %10s  %10s  %10s  %8s  %10s  %10s  %8s\n", "elapsed", "polled", "produced", "stored", "lag", "p50", "p99", "stored/s")
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(out, "\nstopping: gateways forward their spools, the sink commits, then everything closes")
			return d.Close()
		case <-warm.C:
			s := d.Stats()
			if s.Stored > 0 && firstStored.IsZero() {
				firstStored, mark = time.Now(), s
			}
			if s.Stored > 0 && (s.CaughtUp(mark) || time.Since(firstStored) >= *report) {
				since, warmedUp = s, true
				warm.Stop()
			}
		case <-tick.C:
			s := d.Stats()
			rate := float64(s.Stored-prev.Stored) / report.Seconds()
			p50, p99 := "-", "-"
			if warmedUp {
				if q, ok := s.Delays(since, 0.50); ok {
					p50 = q.Round(time.Millisecond).String()
				}
				if q, ok := s.Delays(since, 0.99); ok {
					p99 = q.Round(time.Millisecond).String()
				}
				since = s
			}
			fmt.Fprintf(out, "%8s  %10d  %10d  %10d  %8d  %10s  %10s  %8.0f\n", time.Since(start).Round(time.Second), s.Polled, s.Produced, s.Stored, s.Lag, p50, p99, rate)
			prev = s
		}
	}
}

// kafkaOnly are the flags that configure the connection to an existing
// cluster, meaningless without --brokers.
var kafkaOnly = []string{"tls", "tls-ca-file", "tls-cert-file", "tls-key-file", "tls-server-name", "tls-insecure-skip-verify",
	"sasl-mechanism", "sasl-username", "sasl-password-file", "sasl-password-env"}

// checkFlags checks what the flags ask for before anything starts; set
// holds the flags given (or their environment twins). Its errors name the
// flags.
func checkFlags(set map[string]bool, external bool, partitions, replication, minISR int, report time.Duration) error {
	switch {
	case partitions < 1 || partitions > math.MaxInt32:
		return fmt.Errorf("--partitions %d: want at least 1", partitions)
	case replication < 0 || replication > math.MaxInt16:
		return fmt.Errorf("--replication-factor %d: want 0 (the cluster's default) or a number of brokers, at most %d", replication, math.MaxInt16)
	case minISR < 0:
		return fmt.Errorf("--min-insync-replicas %d: want 0 (the cluster's default) or more", minISR)
	case replication > 0 && minISR > replication:
		return fmt.Errorf("--min-insync-replicas %d is more than --replication-factor %d: no acks=all produce could succeed; with 3 replicas, 2 is usual", minISR, replication)
	case report <= 0:
		return fmt.Errorf("--report %s: want a positive duration", report)
	}
	if external {
		if set["listen"] {
			return errors.New("--listen is our broker's address: with --brokers the demo starts no broker; give one of them")
		}
		return nil
	}
	if replication > 1 {
		return fmt.Errorf("--replication-factor %d: our broker is a single node; give an existing cluster's --brokers", replication)
	}
	if minISR > 0 {
		return fmt.Errorf("--min-insync-replicas %d: our broker is a single node without min.insync.replicas; give an existing cluster's --brokers", minISR)
	}
	for _, name := range kafkaOnly {
		if set[name] {
			return fmt.Errorf("--%s: the TLS and SASL flags connect to an existing cluster: give its --brokers too", name)
		}
	}
	return nil
}

// printBanner says what runs where and which commands to try.
func printBanner(out io.Writer, d *demo.Demo) {
	cfg := d.Config()
	addr := d.BrokerAddr()
	fmt.Fprintf(out, "factorywire demo: %d factories × %d classes × %d devices, polled every %s\n", cfg.Factories, len(cfg.Classes), cfg.Devices, cfg.Interval)
	// The admin commands reach the cluster as the demo does: the same
	// --brokers and, on a secured cluster, the same TLS and SASL flags.
	admin := "--brokers " + addr
	if d.External() {
		fmt.Fprintf(out, "  kafka    the existing cluster at %s (%s); our broker is not started\n", addr, cfg.Kafka.Describe())
		admin += connFlags(cfg.Kafka)
	} else if d.Secure() {
		fmt.Fprintf(out, "  broker   %s: SASL_SSL only (SCRAM-SHA-512 over TLS), ACLs enforced\n", addr)
		fmt.Fprintf(out, "  users    admin (super user), sink, %s: each component connects as its own\n", gatewayUsers(cfg.Factories))
		fmt.Fprintf(out, "  secrets  %s: ca.pem, broker.crt/.key, <user>.password (0600; shown nowhere else)\n", d.SecureDir())
		admin += connFlags(d.AdminKafka())
	} else {
		fmt.Fprintf(out, "  broker   %s (any Kafka client: kcat -b %s -L)\n", addr, addr)
	}
	if d.StandIn() {
		fmt.Fprintf(out, "  MongoDB  the embedded FerretDB stand-in at %s: NO time-series collections, no TTL,\n", d.MongoURI())
		fmt.Fprintf(out, "           no $dateTrunc/$avg: set MONGODB_URI to write to a real MongoDB 6.0+\n")
	} else {
		fmt.Fprintf(out, "  MongoDB  %s, database %s (time-series collections)\n", d.MongoURI(), cfg.Database)
	}
	fmt.Fprintf(out, "  data     %s\n", cfg.DataDir)
	if d.External() {
		fmt.Fprintf(out, "  topics   %s, each with its .dlq\n", strings.Join(d.Topics, ", "))
		fmt.Fprintf(out, "           asked: %d partitions, %s, %s, retention 24h (topics that existed keep their partitions and replicas)\n\n",
			cfg.Partitions, orDefault("replication factor", int(cfg.ReplicationFactor)), orDefault("min.insync.replicas", cfg.MinInsyncReplicas))
	} else {
		fmt.Fprintf(out, "  topics   %s\n\n", strings.Join(d.Topics, ", "))
	}
	fmt.Fprintln(out, "Try, while it runs:")
	uri := d.MongoURI()
	fmt.Fprintf(out, "  go run ./cmd/broker topics list %s\n", admin)
	fmt.Fprintf(out, "  go run ./cmd/broker groups lag %s --group factorywire-sink\n", admin)
	if d.Secure() {
		fmt.Fprintf(out, "  go run ./cmd/broker acls list %s\n", admin)
		fmt.Fprintf(out, "  kcat -b %s -X security.protocol=SASL_SSL -X sasl.mechanisms=SCRAM-SHA-512 -X ssl.ca.location=%s -X sasl.username=sink -X sasl.password=\"$(cat %s)\" -C -t %s -o -5 -e\n",
			addr, shellQuote(d.CAFile()), shellQuote(d.PasswordFile("sink")), d.Topics[0])
	}
	if d.External() && (cfg.Kafka.TLS.Enabled || cfg.Kafka.SASL.Mechanism != "") {
		fmt.Fprintln(out, "  (the two above carry the TLS and SASL flags the demo was given: run them from this directory)")
	}
	fmt.Fprintf(out, "  go run ./cmd/sink query range --config configs/sink.yaml --mongodb-uri %s --factory %s --class %s --device %s-01 --from 1m\n", uri, demo.Factory(0), cfg.Classes[0], cfg.Classes[0])
	fmt.Fprintf(out, "  (each sample carries its device's tag line=%s and its units: range --json prints them; in MongoDB: find {\"meta.tags.line\": \"%s\"})\n", demo.Line, demo.Line)
	fmt.Fprintf(out, "  go run ./cmd/sink query gaps --config configs/sink.yaml --mongodb-uri %s --factory %s --class %s --from 10m\n", uri, demo.Factory(0), cfg.Classes[0])
	fmt.Fprintf(out, "  go run ./cmd/sink query latest --config configs/sink.yaml --mongodb-uri %s --factory %s --class %s\n", uri, demo.Factory(0), cfg.Classes[0])
	fmt.Fprintf(out, "  go run ./cmd/sink query status --config configs/sink.yaml --mongodb-uri %s --factory %s --class %s --errors\n", uri, demo.Factory(0), cfg.Classes[0])
	fmt.Fprintf(out, "  go run ./cmd/sink query window --config configs/sink.yaml --mongodb-uri %s --factory %s --class %s --device %s-01 --field pressure --from 10m --unit minute\n", uri, demo.Factory(0), cfg.Classes[0], cfg.Classes[0])
	if d.StandIn() {
		fmt.Fprintln(out, "  (window reads the minute rollups; with --raw, or in seconds, it needs a real MongoDB: the stand-in lacks $dateTrunc)")
	}
	fmt.Fprintln(out, "Ctrl-C stops everything. p50 and p99: poll to stored document, over each interval, start-up left out (until the sink first caught up).")
	fmt.Fprintln(out)
}

// gatewayUsers names the secured demo's gateway users.
func gatewayUsers(factories int) string {
	var us []string
	for i := range factories {
		us = append(us, demo.GatewayUser(demo.Factory(i)))
	}
	return strings.Join(us, ", ")
}

// orDefault is "name n", or "the cluster's default name" for 0.
func orDefault(name string, n int) string {
	if n == 0 {
		return "the cluster's default " + name
	}
	return fmt.Sprintf("%s %d", name, n)
}

// connFlags are the admin commands' TLS and SASL flags (cli.KafkaFlags)
// for the connection c, each with a leading space: paths, the user and
// the name of the password's variable, never a password.
func connFlags(c kafkaclient.Config) string {
	var b strings.Builder
	str := func(name, v string) {
		if v != "" {
			b.WriteString(" --" + name + " " + shellQuote(v))
		}
	}
	if c.TLS.Enabled {
		b.WriteString(" --tls")
	}
	str("tls-ca-file", c.TLS.CAFile)
	str("tls-cert-file", c.TLS.CertFile)
	str("tls-key-file", c.TLS.KeyFile)
	str("tls-server-name", c.TLS.ServerName)
	if c.TLS.InsecureSkipVerify {
		b.WriteString(" --tls-insecure-skip-verify")
	}
	str("sasl-mechanism", c.SASL.Mechanism)
	str("sasl-username", c.SASL.Username)
	str("sasl-password-file", c.SASL.PasswordFile)
	str("sasl-password-env", c.SASL.PasswordEnv)
	return b.String()
}

// shellQuote quotes s for a POSIX shell when it holds anything but ASCII
// letters, digits and -_./:@,+=.
func shellQuote(s string) string {
	unsafe := strings.ContainsFunc(s, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("-_./:@,+=", r))
	})
	if !unsafe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
