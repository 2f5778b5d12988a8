// Command sink consumes the samples gateways produce and writes them to
// MongoDB time-series collections, and queries what it wrote.
//
//	sink run   --config configs/sink.yaml [--brokers host:port,...] [--mongodb-uri URI] [--log-level info] [--log-format text|json]
//	sink query latest --config FILE --factory F --class C [--device D,...] [--format text|json]
//	sink query window --config FILE --factory F --class C --device D --field X --from T --to T [--unit minute] [--bin 1] [--format text|json]
//	sink query range  --config FILE --factory F --class C --device D --from T --to T [--limit N] [--format text|json]
//	sink query gaps   --config FILE --factory F --class C [--device D] --from T --to T [--format text|json]
//	sink standin --data-dir DIR [--listen 127.0.0.1:27017] [--allow-remote]
//
// Times are RFC 3339 (2026-12-01T08:00:00Z) or a duration before now
// (--from 1h: an hour ago); --to defaults to now and --from to an hour
// before --to. query prints a table, or JSON lines with --format json (or --json); a query
// gives up after --timeout (30s, gaps 10m). query gaps is the loss check:
// the seqs missing per device (sink query gaps --help). standin runs the
// embedded FerretDB stand-in, prints its URI and serves until SIGINT or
// SIGTERM, so that run and query can be tried without MongoDB (sink
// standin --help).
//
// Every flag has an environment twin: FACTORYWIRE_SINK_ and the flag name
// in upper case with '-' as '_' (FACTORYWIRE_SINK_CONFIG). Flags win over
// the environment, which wins over the file. Exit status: 0 after a clean
// stop, 1 when the sink or a query fails, 2 for a usage or configuration
// error, 3 when query gaps finds samples lost.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/internal/cli"
	"github.com/factorywire/factorywire/internal/kafkaclient"
	"github.com/factorywire/factorywire/sink"
	"github.com/factorywire/factorywire/storage/mongots"
	"github.com/factorywire/factorywire/topics"
)

const envPrefix = "FACTORYWIRE_SINK"

// queryTimeout is the default --timeout of a query but gaps.
const queryTimeout = 30 * time.Second

// usageError marks errors that exit with status 2.
type usageError = cli.UsageError

func main() { cli.Main("sink", run) }

func run(args []string, stdout io.Writer) error {
	root := &ffcli.Command{
		Name:        "sink",
		ShortUsage:  "sink <subcommand> [flags]",
		ShortHelp:   "write Kafka samples to MongoDB and query them",
		Subcommands: []*ffcli.Command{runCommand(), queryCommand(stdout), standinCommand(stdout)},
	}
	root.Exec = cli.NeedSubcommand("sink", root.Subcommands)
	return cli.Run(root, args)
}

// flags are the flags every subcommand shares.
type flags struct {
	config     *string
	mongodbURI *string
	database   *string
}

func addFlags(fs *flag.FlagSet) flags {
	return flags{
		config:     fs.String("config", "", "YAML config file (see configs/sink.yaml); required"),
		mongodbURI: fs.String("mongodb-uri", "", "MongoDB connection string (overrides mongodb.uri)"),
		database:   fs.String("database", "", "MongoDB database (overrides mongodb.database)"),
	}
}

// load reads the config file, applies the flags that were set and
// validates the result.
func (f flags) load(fs *flag.FlagSet, apply func(*sink.Config, *flag.Flag)) (sink.Config, error) {
	if *f.config == "" {
		return sink.Config{}, usageError{Err: errors.New("--config FILE is required")}
	}
	cfg, err := sink.LoadConfig(*f.config)
	if err != nil {
		return sink.Config{}, usageError{Err: err}
	}
	fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "mongodb-uri":
			cfg.MongoDB.URI = *f.mongodbURI
		case "database":
			cfg.MongoDB.Database = *f.database
		default:
			if apply != nil {
				apply(&cfg, fl)
			}
		}
	})
	if err := cfg.Validate(); err != nil {
		return sink.Config{}, usageError{Err: fmt.Errorf("%s: %w", *f.config, err)}
	}
	return cfg, nil
}

func runCommand() *ffcli.Command {
	fs := flag.NewFlagSet("sink run", flag.ContinueOnError)
	f := addFlags(fs)
	brokers := fs.String("brokers", "", "seed brokers, host:port,... (overrides kafka.brokers)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logFormat := fs.String("log-format", "text", cli.LogFormatUsage)
	return &ffcli.Command{
		Name:       "run",
		ShortUsage: "sink run --config FILE [flags]",
		ShortHelp:  "consume and write until SIGINT or SIGTERM",
		FlagSet:    fs,
		Options:    []ff.Option{ff.WithEnvVarPrefix(envPrefix)},
		Exec: func(ctx context.Context, _ []string) error {
			logger, err := cli.Logger(*logLevel, *logFormat)
			if err != nil {
				return err
			}
			cfg, err := f.load(fs, func(cfg *sink.Config, fl *flag.Flag) {
				if fl.Name == "brokers" {
					cfg.Kafka.Brokers = strings.Split(*brokers, ",")
				}
			})
			if err != nil {
				return err
			}
			// The kafka block's files and password, read now so that a
			// missing one is a usage error.
			if _, err := cfg.Kafka.Opts(nil); err != nil {
				return usageError{Err: fmt.Errorf("%s: %w", *f.config, kafkaclient.Rekey(err, func(k string) string { return "kafka." + k }))}
			}
			ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			s, err := sink.New(cfg, logger)
			if err != nil {
				return err
			}
			err = s.Run(ctx)
			logger.Info("sink stopped")
			return err
		},
	}
}

// queryFlags are the flags of the query subcommands.
type queryFlags struct {
	flags
	factory, class, device, field *string
	from, to, unit                *string
	bin, limit                    *int
	json, errorsOnly, raw         *bool
	format                        *string
	timeout                       *time.Duration
}

// addQueryFlags defines the query flags on fs, --timeout defaulting to
// timeout.
func addQueryFlags(fs *flag.FlagSet, timeout time.Duration) queryFlags {
	return queryFlags{
		flags:      addFlags(fs),
		factory:    fs.String("factory", "", "the factory; required"),
		class:      fs.String("class", "", "the device class; required"),
		device:     fs.String("device", "", "the device (latest: a comma-separated list; latest and gaps: default every device)"),
		field:      fs.String("field", "", "window: the field"),
		from:       fs.String("from", "1h", "start, RFC 3339 or a duration before now"),
		to:         fs.String("to", "", "end (exclusive), RFC 3339 or a duration before now; default now"),
		unit:       fs.String("unit", "minute", "window: bucket unit, second, minute, hour or day"),
		bin:        fs.Int("bin", 1, "window: bucket size in units"),
		limit:      fs.Int("limit", 1000, "range: at most this many samples, 0 for all"),
		json:       fs.Bool("json", false, "the same as --format json"),
		format:     fs.String("format", "text", "text (a table, for people) or json (one JSON object per line, for scripts; the schema is in docs/OPERATIONS.md)"),
		errorsOnly: fs.Bool("errors", false, "status: only the devices whose newest sample has errors"),
		raw:        fs.Bool("raw", false, "window: compute from the samples even when a rollup serves the bin"),
		timeout:    fs.Duration("timeout", timeout, "give up the query after this long"),
	}
}

func queryCommand(stdout io.Writer) *ffcli.Command {
	sub := func(name, usage, help string, timeout time.Duration, exec func(ctx context.Context, q queryFlags, st *mongots.Store, coll string) error) *ffcli.Command {
		fs := flag.NewFlagSet("sink query "+name, flag.ContinueOnError)
		q := addQueryFlags(fs, timeout)
		return &ffcli.Command{
			Name:       name,
			ShortUsage: "sink query " + usage,
			ShortHelp:  help,
			FlagSet:    fs,
			Options:    []ff.Option{ff.WithEnvVarPrefix(envPrefix)},
			Exec: func(ctx context.Context, _ []string) error {
				switch *q.format {
				case "json":
					*q.json = true
				case "text":
				default:
					return usageError{Err: fmt.Errorf("--format %q: want text or json", *q.format)}
				}
				switch {
				case *q.factory == "" && *q.class == "":
					return usageError{Err: errors.New("--factory and --class are required: the query reads the collection of one factory's class")}
				case *q.factory == "":
					return usageError{Err: errors.New("--factory is required")}
				case *q.class == "":
					return usageError{Err: errors.New("--class is required")}
				}
				cfg, err := q.load(fs, nil)
				if err != nil {
					return err
				}
				name, err := topics.New(cfg.TopicPrefix, *q.factory, *q.class)
				if err != nil {
					return usageError{Err: fmt.Errorf("--factory %q --class %q: %v", *q.factory, *q.class, err)}
				}
				if *q.timeout <= 0 {
					return usageError{Err: fmt.Errorf("--timeout %v: want more than 0", *q.timeout)}
				}
				st, client, err := sink.NewStore(cfg.MongoDB, nil)
				if err != nil {
					return err
				}
				defer client.Disconnect(context.Background())
				ctx, cancel := context.WithTimeout(ctx, *q.timeout)
				defer cancel()
				return exec(ctx, q, st, name.Collection())
			},
		}
	}
	latest := sub("latest", "latest --config FILE --factory F --class C [--device D,...] [--format text|json]",
		"print the latest sample of each device (from the device status)", queryTimeout,
		func(ctx context.Context, q queryFlags, st *mongots.Store, coll string) error {
			entries, err := readStatus(ctx, st, coll, *q.device, false)
			if err != nil {
				return err
			}
			samples := make([]devices.Sample, len(entries))
			for i, e := range entries {
				samples[i] = e.Sample
			}
			return printSamples(stdout, samples, *q.json)
		})
	status := sub("status", "status --config FILE --factory F --class C [--device D,...] [--errors] [--format text|json]",
		"print each device's newest sample time, seq and errors, and since when it has had errors", queryTimeout,
		func(ctx context.Context, q queryFlags, st *mongots.Store, coll string) error {
			entries, err := readStatus(ctx, st, coll, *q.device, *q.errorsOnly)
			if err != nil {
				return err
			}
			return printStatus(stdout, entries, *q.json)
		})
	window := sub("window", "window --config FILE --factory F --class C --device D --field X [--from T] [--to T] [--unit minute] [--bin 1] [--raw] [--format text|json]",
		"print min, avg and max of a field per time bucket (from the rollups when the bucket is whole minutes or hours)", queryTimeout,
		func(ctx context.Context, q queryFlags, st *mongots.Store, coll string) error {
			from, to, err := q.span()
			if err != nil {
				return err
			}
			if *q.device == "" || *q.field == "" {
				return usageError{Err: errors.New("window needs --device and --field")}
			}
			per, useRollups := rollupFor(*q.unit, *q.bin)
			var buckets []mongots.Bucket
			if useRollups && !*q.raw {
				buckets, err = st.RollupWindow(ctx, coll, per, *q.device, *q.field, from, to, *q.unit, *q.bin)
			} else {
				buckets, err = st.Window(ctx, coll, *q.device, *q.field, from, to, *q.unit, *q.bin)
			}
			if err != nil {
				if errors.Is(err, mongots.ErrInvalidArgument) {
					return usageError{Err: err}
				}
				return err
			}
			return printBuckets(stdout, buckets, *q.json)
		})
	rng := sub("range", "range --config FILE --factory F --class C --device D [--from T] [--to T] [--limit N] [--format text|json]",
		"print a device's samples in a time range, oldest first", queryTimeout,
		func(ctx context.Context, q queryFlags, st *mongots.Store, coll string) error {
			from, to, err := q.span()
			if err != nil {
				return err
			}
			if *q.device == "" {
				return usageError{Err: errors.New("range needs --device")}
			}
			samples, err := st.Range(ctx, coll, *q.device, from, to, *q.limit)
			if err != nil {
				if errors.Is(err, mongots.ErrInvalidArgument) {
					return usageError{Err: err}
				}
				return err
			}
			return printSamples(stdout, samples, *q.json)
		})
	gaps := sub("gaps", "gaps --config FILE --factory F --class C [--device D] [--from T] [--to T] [--timeout 10m] [--format text|json]",
		"list the seqs missing per device in a time range (exit 3 when any)", gapsTimeout, queryGaps(stdout))
	gaps.LongHelp = gapsLongHelp
	return &ffcli.Command{
		Name:        "query",
		ShortUsage:  "sink query latest|status|window|range|gaps --config FILE --factory F --class C [flags]",
		ShortHelp:   "query the samples stored in MongoDB",
		Subcommands: []*ffcli.Command{latest, status, window, rng, gaps},
		Exec:        cli.NeedSubcommand("sink query", []*ffcli.Command{latest, status, window, rng, gaps}),
	}
}

// rollupFor returns the rollup period that serves window bins of binSize
// units: hours when the bin is whole hours, else minutes when it is whole
// minutes; false when neither (seconds).
func rollupFor(unit string, binSize int) (mongots.Period, bool) {
	per := map[string]time.Duration{"minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour}[unit]
	bin := time.Duration(binSize) * per
	switch {
	case binSize < 1 || per == 0:
		return mongots.Period{}, false
	case bin%time.Hour == 0:
		return mongots.PeriodHour, true
	default:
		return mongots.PeriodMinute, true
	}
}

// readStatus returns the status entries of coll: of the comma-separated
// devices when given, else of every device; with errorsOnly only those
// whose newest sample has errors.
func readStatus(ctx context.Context, st *mongots.Store, coll, devs string, errorsOnly bool) ([]mongots.DeviceStatus, error) {
	if devs == "" {
		return st.Status(ctx, coll, errorsOnly)
	}
	byDevice, err := st.ReadStatus(ctx, coll, strings.Split(devs, ","))
	if err != nil {
		return nil, err
	}
	out := make([]mongots.DeviceStatus, 0, len(byDevice))
	for _, e := range byDevice {
		if !errorsOnly || e.ErrorCount > 0 {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b mongots.DeviceStatus) int { return strings.Compare(a.Sample.Device, b.Sample.Device) })
	return out, nil
}

// statusJSON is a line of `sink query status --format json`; every key is
// always present (docs/OPERATIONS.md).
type statusJSON struct {
	Device      string            `json:"device"`
	TS          time.Time         `json:"ts"`
	Seq         uint64            `json:"seq"`
	ErrorCount  int               `json:"error_count"`
	Errors      map[string]string `json:"errors"`       // {} when none
	ErrorsSince *time.Time        `json:"errors_since"` // null when the newest sample has none
	UpdatedAt   time.Time         `json:"updated_at"`
}

// printStatus prints status entries as a table or JSON lines.
func printStatus(w io.Writer, entries []mongots.DeviceStatus, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		for _, e := range entries {
			v := statusJSON{Device: e.Sample.Device, TS: e.Sample.Time, Seq: e.Sample.Seq, ErrorCount: e.ErrorCount,
				Errors: e.Sample.Errors, UpdatedAt: e.UpdatedAt}
			if v.Errors == nil {
				v.Errors = map[string]string{}
			}
			if !e.ErrorsSince.IsZero() {
				v.ErrorsSince = &e.ErrorsSince
			}
			if err := enc.Encode(v); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tTS\tSEQ\tERRORS\tSINCE\tFIELDS IN ERROR")
	for _, e := range entries {
		since := "-"
		if !e.ErrorsSince.IsZero() {
			since = e.ErrorsSince.UTC().Format("2006-01-02T15:04:05.000Z")
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\n", e.Sample.Device, e.Sample.Time.UTC().Format("2006-01-02T15:04:05.000Z"),
			e.Sample.Seq, e.ErrorCount, since, errorList(e.Sample.Errors))
	}
	return tw.Flush()
}

// span parses --from and --to.
func (q queryFlags) span() (time.Time, time.Time, error) {
	now := time.Now().UTC()
	to := now
	if *q.to != "" {
		t, err := parseTime(*q.to, now)
		if err != nil {
			return time.Time{}, time.Time{}, usageError{Err: fmt.Errorf("--to %q: %v", *q.to, err)}
		}
		to = t
	}
	from, err := parseTime(*q.from, now)
	if err != nil {
		return time.Time{}, time.Time{}, usageError{Err: fmt.Errorf("--from %q: %v", *q.from, err)}
	}
	if !from.Before(to) {
		return time.Time{}, time.Time{}, usageError{Err: fmt.Errorf("--from %s is not before --to %s", from.Format(time.RFC3339), to.Format(time.RFC3339))}
	}
	return from, to, nil
}

// parseTime reads RFC 3339 or a duration before now.
func parseTime(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, errors.New("want RFC 3339 (2026-12-01T08:00:00Z) or a duration before now (90m)")
	}
	return t.UTC(), nil
}

func printSamples(w io.Writer, samples []devices.Sample, asJSON bool) error {
	if asJSON {
		for _, s := range samples {
			if _, err := w.Write(append(s.AppendJSON(nil), '\n')); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tTS\tSEQ\tFIELDS\tERRORS")
	for _, s := range samples {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", s.Device, s.Time.UTC().Format("2006-01-02T15:04:05.000Z"), s.Seq, fieldList(s.Fields, s.Units), errorList(s.Errors))
	}
	return tw.Flush()
}

// fieldList prints fields as name=value, sorted by name, each followed by
// its unit when units has one: "pressure=12.5 bar running=true".
func fieldList(fields map[string]devices.Value, units map[string]string) string {
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + "=" + string(fields[n].AppendJSON(nil))
		if u := units[n]; u != "" {
			parts[i] += " " + u
		}
	}
	return strings.Join(parts, " ")
}

func errorList(errs map[string]string) string {
	names := make([]string, 0, len(errs))
	for n := range errs {
		names = append(names, n)
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + ": " + errs[n]
	}
	return strings.Join(parts, "; ")
}

func printBuckets(w io.Writer, buckets []mongots.Bucket, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		for _, b := range buckets {
			if err := enc.Encode(struct {
				Start time.Time `json:"start"`
				Min   float64   `json:"min"`
				Avg   float64   `json:"avg"`
				Max   float64   `json:"max"`
				Count int64     `json:"count"`
			}{b.Start, b.Min, b.Avg, b.Max, b.Count}); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "START\tMIN\tAVG\tMAX\tCOUNT")
	for _, b := range buckets {
		fmt.Fprintf(tw, "%s\t%g\t%g\t%g\t%d\n", b.Start.UTC().Format(time.RFC3339), b.Min, b.Avg, b.Max, b.Count)
	}
	return tw.Flush()
}
