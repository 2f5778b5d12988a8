package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/factorywire/factorywire/internal/cli"
	"github.com/factorywire/factorywire/internal/kafkaclient"
	"github.com/factorywire/factorywire/topics"
)

// adminFlags are the flags every topics and groups subcommand takes: the
// connection's (cli.KafkaFlags: --brokers, --tls…, --sasl…) and --timeout.
type adminFlags struct {
	kafka   *cli.KafkaFlags
	timeout *time.Duration
}

func addAdminFlags(fs *flag.FlagSet) adminFlags {
	return adminFlags{
		kafka:   cli.AddKafkaFlags(fs, "127.0.0.1:9092"),
		timeout: fs.Duration("timeout", 30*time.Second, "bound on the whole command"),
	}
}

// run connects to the cluster and runs fn with a topics.Admin. A broker
// refusing the connection for good (wrong credentials, an untrusted or
// misnamed certificate) stops fn at once, and run returns that
// *kafkaclient.ConnError rather than fn's error or a timeout.
func (f adminFlags) run(ctx context.Context, fn func(context.Context, *topics.Admin) error) error {
	cfg, err := f.kafka.Config()
	if err != nil {
		return err
	}
	// Warnings (TLS verification off, PLAIN without TLS) to stderr, for
	// the person at the terminal: text.
	logger, err := cli.Logger("warn", "text")
	if err != nil {
		return err
	}
	opts, err := cfg.Opts(logger)
	if err != nil {
		return usageError{Err: cli.FlagErrors(err)}
	}
	mon := kafkaclient.NewMonitor(cfg, nil)
	cl, err := kgo.NewClient(append(opts, kgo.WithHooks(mon))...)
	if err != nil {
		return usageError{Err: fmt.Errorf("--brokers %q: %w", strings.Join(cfg.Brokers, ","), err)}
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, *f.timeout)
	defer cancel()
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	go func() {
		select {
		case <-mon.Failed():
			stop(mon.First())
		case <-ctx.Done():
		}
	}()
	err = fn(ctx, topics.NewAdmin(cl))
	if ce := mon.First(); ce != nil {
		return ce
	}
	return err
}

// parseRetention reads a retention: Go durations (36h, 90m) plus days
// (7d), or "unlimited".
func parseRetention(s string) (time.Duration, error) {
	if s == "unlimited" || s == "-1" {
		return -1, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("retention %q: want a positive number of days (7d), a duration (36h) or unlimited", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("retention %q: want a positive number of days (7d), a duration (36h) or unlimited", s)
	}
	return d, nil
}

func formatRetention(ms string) string {
	n, err := strconv.ParseInt(ms, 10, 64)
	switch {
	case err != nil:
		return ms
	case n < 0:
		return "unlimited"
	case n%(24*3600*1000) == 0:
		return fmt.Sprintf("%dd", n/(24*3600*1000))
	default:
		return (time.Duration(n) * time.Millisecond).String()
	}
}

// adminCommand is the subcommand name of parent ("broker topics"): the
// admin flags, then setup's own on the same flag set; it runs setup's
// function with an Admin of the cluster.
func adminCommand(parent, name, usage, help string, setup func(*flag.FlagSet) func(context.Context, *topics.Admin) error) *ffcli.Command {
	fs := flag.NewFlagSet(parent+" "+name, flag.ContinueOnError)
	f := addAdminFlags(fs)
	exec := setup(fs)
	return &ffcli.Command{
		Name: name, ShortUsage: parent + " " + usage, ShortHelp: help, FlagSet: fs,
		Options: []ff.Option{ff.WithEnvVarPrefix(envPrefix)},
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return usageError{Err: fmt.Errorf("unexpected arguments %q", args)}
			}
			return f.run(ctx, exec)
		},
	}
}

func topicsCommand(out io.Writer) *ffcli.Command {
	sub := func(name, usage, help string, setup func(*flag.FlagSet) func(context.Context, *topics.Admin) error) *ffcli.Command {
		return adminCommand("broker topics", name, usage, help, setup)
	}
	create := sub("create", "create --factory F --classes a,b [--partitions 6] [--retention 7d] [--replication-factor 3] [--min-insync-replicas 2] [--prefix P] [--no-dlq]",
		"ensure a factory's topics (and dead-letter topics) exist with this retention; idempotent",
		func(fs *flag.FlagSet) func(context.Context, *topics.Admin) error {
			factory := fs.String("factory", "", "factory name (required)")
			classes := fs.String("classes", "", "device classes, comma-separated (required)")
			partitions := fs.Int("partitions", 6, "partitions of each samples topic")
			retention := fs.String("retention", "", "retention: 7d, 36h or unlimited (default: the cluster's)")
			replication := fs.Int("replication-factor", 0, "brokers holding each partition of the topics created (0: the cluster's default.replication.factor); existing topics keep theirs")
			minISR := fs.Int("min-insync-replicas", 0, "min.insync.replicas of the topics: replicas that must hold a record before an acks=all produce succeeds (0: the cluster's default)")
			prefix := fs.String("prefix", "", "deployment prefix")
			noDLQ := fs.Bool("no-dlq", false, "do not create <topic>.dlq topics")
			return func(ctx context.Context, a *topics.Admin) error {
				if err := checkReplication(*replication, *minISR); err != nil {
					return usageError{Err: err}
				}
				spec := topics.FactorySpec{Prefix: *prefix, Factory: *factory, Partitions: int32(*partitions), NoDLQ: *noDLQ,
					ReplicationFactor: int16(*replication), MinInsyncReplicas: *minISR}
				if *classes != "" {
					spec.Classes = strings.Split(*classes, ",")
				}
				if *retention != "" {
					d, err := parseRetention(*retention)
					if err != nil {
						return usageError{Err: err}
					}
					spec.Retention = d
				}
				if *factory == "" || len(spec.Classes) == 0 {
					return usageError{Err: errors.New("--factory and --classes are required")}
				}
				changes, err := a.Ensure(ctx, spec)
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				for _, c := range changes {
					fmt.Fprintf(tw, "%s\t%s\n", c.Topic, c.Action)
				}
				tw.Flush()
				return refusedFlag(err, *replication, *minISR)
			}
		})
	list := sub("list", "list [--factory F] [--prefix P] [--format text|json]", "list factorywire topics with partitions, retention, records, size and group lag",
		func(fs *flag.FlagSet) func(context.Context, *topics.Admin) error {
			factory := fs.String("factory", "", "only this factory (default: all)")
			prefix := fs.String("prefix", "", "deployment prefix")
			format := formatFlag(fs)
			return func(ctx context.Context, a *topics.Admin) error {
				if err := checkFormat(*format); err != nil {
					return err
				}
				infos, err := a.List(ctx, *prefix, *factory)
				if err != nil {
					return err
				}
				if *format == "json" {
					return writeJSON(out, topicsToJSON(infos))
				}
				printTopics(out, infos)
				return nil
			}
		})
	describe := sub("describe", "describe --topic T [--format text|json]", "describe one topic",
		func(fs *flag.FlagSet) func(context.Context, *topics.Admin) error {
			topic := fs.String("topic", "", "topic name (required)")
			format := formatFlag(fs)
			return func(ctx context.Context, a *topics.Admin) error {
				if err := checkFormat(*format); err != nil {
					return err
				}
				n, err := topics.Parse(*topic)
				if err != nil {
					return usageError{Err: err}
				}
				infos, err := a.List(ctx, n.Prefix, n.Factory)
				if err != nil {
					return err
				}
				for _, t := range infos {
					if t.Name == n {
						if *format == "json" {
							return writeJSON(out, topicsToJSON([]topics.TopicInfo{t}))
						}
						printTopics(out, []topics.TopicInfo{t})
						return nil
					}
				}
				return fmt.Errorf("topic %s does not exist", *topic)
			}
		})
	alter := sub("alter", "alter --factory F [--class C] [--retention 14d] [--partitions N] [--prefix P]",
		"change retention, or raise partitions (keys move to other partitions)",
		func(fs *flag.FlagSet) func(context.Context, *topics.Admin) error {
			factory := fs.String("factory", "", "factory name (required)")
			class := fs.String("class", "", "only this class's topic (default: every topic of the factory)")
			retention := fs.String("retention", "", "new retention: 7d, 36h or unlimited")
			partitions := fs.Int("partitions", 0, "new partition count of the samples topics (only upward)")
			prefix := fs.String("prefix", "", "deployment prefix")
			return func(ctx context.Context, a *topics.Admin) error {
				if *factory == "" || (*retention == "" && *partitions == 0) {
					return usageError{Err: errors.New("--factory and one of --retention or --partitions are required")}
				}
				infos, err := a.Topics(ctx, *prefix, *factory)
				if err != nil {
					return err
				}
				var names, samples []string
				for _, t := range infos {
					if *class == "" || t.Name.Class == *class {
						names = append(names, t.Name.String())
						if !t.Name.DLQ {
							samples = append(samples, t.Name.String())
						}
					}
				}
				if len(names) == 0 {
					return fmt.Errorf("no topics of factory %s%s", *factory, map[bool]string{true: " class " + *class}[*class != ""])
				}
				if *retention != "" {
					d, err := parseRetention(*retention)
					if err != nil {
						return usageError{Err: err}
					}
					if err := a.SetRetention(ctx, names, d); err != nil {
						return err
					}
					fmt.Fprintf(out, "retention %s set on %s\n", *retention, strings.Join(names, ", "))
				}
				if *partitions > 0 {
					fmt.Fprintf(out, "warning: with more partitions, devices hash to other partitions; a device's order holds only among the samples written after the change\n")
					for _, t := range samples {
						if err := a.AddPartitions(ctx, t, *partitions); err != nil {
							return err
						}
						fmt.Fprintf(out, "%s now has %d partitions\n", t, *partitions)
					}
				}
				return nil
			}
		})
	del := sub("delete", "delete --factory F --confirm F [--prefix P]", "delete every topic of a factory, samples and dead letters",
		func(fs *flag.FlagSet) func(context.Context, *topics.Admin) error {
			factory := fs.String("factory", "", "factory name (required)")
			confirm := fs.String("confirm", "", "repeat the factory name to confirm: what the topics hold is lost")
			prefix := fs.String("prefix", "", "deployment prefix")
			return func(ctx context.Context, a *topics.Admin) error {
				if *factory == "" || *confirm != *factory {
					return usageError{Err: fmt.Errorf("deleting the topics of factory %q loses their data: repeat the name with --confirm %s", *factory, *factory)}
				}
				names, err := a.DeleteFactory(ctx, *prefix, *factory)
				for _, n := range names {
					fmt.Fprintf(out, "deleted %s\n", n)
				}
				if err == nil && len(names) == 0 {
					fmt.Fprintf(out, "factory %s has no topics\n", *factory)
				}
				return err
			}
		})
	return &ffcli.Command{
		Name: "topics", ShortUsage: "broker topics <create|list|describe|alter|delete> [flags]",
		ShortHelp:   "administer a factory's topics on any Kafka-compatible cluster",
		Subcommands: []*ffcli.Command{create, list, describe, alter, del},
		Exec:        cli.NeedSubcommand("broker topics", []*ffcli.Command{create, list, describe, alter, del}),
	}
}

// checkReplication checks --replication-factor and --min-insync-replicas
// before anything is sent; its errors name the flags.
func checkReplication(replication, minISR int) error {
	switch {
	case replication < 0 || replication > math.MaxInt16:
		return fmt.Errorf("--replication-factor %d: want 0 (the cluster's default) or a number of brokers, at most %d", replication, math.MaxInt16)
	case minISR < 0:
		return fmt.Errorf("--min-insync-replicas %d: want 0 (the cluster's default) or more", minISR)
	case replication > 0 && minISR > replication:
		return fmt.Errorf("--min-insync-replicas %d is more than --replication-factor %d: no acks=all produce could succeed; with 3 replicas, 2 is usual", minISR, replication)
	}
	return nil
}

// refusedFlag names the flag in err when the cluster refused the
// replication factor (more than its brokers) or min.insync.replicas (a
// broker without that config, as ours).
func refusedFlag(err error, replication, minISR int) error {
	switch {
	case err == nil:
		return nil
	case replication > 0 && errors.Is(err, kerr.InvalidReplicationFactor):
		return fmt.Errorf("--replication-factor %d: %w", replication, err)
	case minISR > 0 && errors.Is(err, kerr.InvalidConfig) && strings.Contains(err.Error(), "min.insync.replicas"):
		return fmt.Errorf("--min-insync-replicas %d: %w", minISR, err)
	}
	return err
}

// printTopics prints infos as a table. REPLICATION is the replication
// factor, MIN.INSYNC.REPLICAS the topic's config; a dash where the broker
// reports none (ours has no min.insync.replicas).
func printTopics(out io.Writer, infos []topics.TopicInfo) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITIONS\tREPLICATION\tMIN.INSYNC.REPLICAS\tRETENTION\tRECORDS\tSIZE\tGROUP LAG")
	var unknownSize []string // why, once per distinct cause
	for _, t := range infos {
		var lags []string
		for g, l := range t.Lag {
			lags = append(lags, fmt.Sprintf("%s=%d", g, l))
		}
		if len(lags) == 0 {
			lags = []string{"-"}
		}
		replicas, minISR := "-", "-"
		if t.Replicas > 0 {
			replicas = strconv.Itoa(t.Replicas)
		}
		if t.MinInsyncReplicas != "" {
			minISR = t.MinInsyncReplicas
		}
		size := "-"
		if t.Bytes >= 0 {
			size = formatBytes(t.Bytes)
		} else if t.BytesErr != nil && !slices.Contains(unknownSize, t.BytesErr.Error()) {
			unknownSize = append(unknownSize, t.BytesErr.Error())
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%d\t%s\t%s\n", t.Name, t.Partitions, replicas, minISR, formatRetention(t.Retention), t.Records, size, strings.Join(lags, " "))
	}
	tw.Flush()
	for _, why := range unknownSize {
		fmt.Fprintf(out, "SIZE unknown (-): %s\n", why)
	}
}

// formatBytes prints a size in bytes with binary units: 812 B, 1.5 KiB,
// 12.3 MiB.
func formatBytes(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v, unit := float64(n)/1024, 0
	for v >= 1024 && unit < 4 {
		v /= 1024
		unit++
	}
	return fmt.Sprintf("%.1f %s", v, []string{"KiB", "MiB", "GiB", "TiB", "PiB"}[unit])
}

func groupsCommand(out io.Writer) *ffcli.Command {
	sub := func(name, usage, help string, setup func(*flag.FlagSet) func(context.Context, *topics.Admin) error) *ffcli.Command {
		return adminCommand("broker groups", name, usage, help, setup)
	}
	list := sub("list", "list [--format text|json]", "list consumer groups with state, members and total lag",
		func(fs *flag.FlagSet) func(context.Context, *topics.Admin) error {
			format := formatFlag(fs)
			return func(ctx context.Context, a *topics.Admin) error {
				if err := checkFormat(*format); err != nil {
					return err
				}
				gs, err := a.Groups(ctx)
				if err != nil {
					return err
				}
				if *format == "json" {
					return writeJSON(out, groupsToJSON(gs))
				}
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "GROUP\tSTATE\tMEMBERS\tLAG")
				for _, g := range gs {
					fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", g.Group, g.State, g.Members, g.Lag)
				}
				return tw.Flush()
			}
		})
	lag := func(name, help string) *ffcli.Command {
		return sub(name, name+" --group G [--format text|json]", help, func(fs *flag.FlagSet) func(context.Context, *topics.Admin) error {
			group := fs.String("group", "", "consumer group (required)")
			format := formatFlag(fs)
			return func(ctx context.Context, a *topics.Admin) error {
				if *group == "" {
					return usageError{Err: errors.New("--group is required")}
				}
				if err := checkFormat(*format); err != nil {
					return err
				}
				state, parts, err := a.Lag(ctx, *group)
				if err != nil {
					return err
				}
				if *format == "json" {
					return writeJSON(out, groupLagToJSON(*group, state, parts))
				}
				fmt.Fprintf(out, "group %s: %s\n", *group, state)
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "TOPIC\tPARTITION\tCOMMITTED\tEND\tLAG\tMEMBER")
				for _, p := range parts {
					committed := strconv.FormatInt(p.Committed, 10)
					if p.Committed < 0 {
						committed = "-"
					}
					fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%s\n", p.Topic, p.Partition, committed, p.End, p.Lag, p.Member)
				}
				return tw.Flush()
			}
		})
	}
	reset := sub("reset", "reset --group G --topic T[,T] (--to-earliest|--to-latest|--to-datetime RFC3339|--to-offset N) [--execute]",
		"move a stopped group's committed offsets; a dry run unless --execute",
		func(fs *flag.FlagSet) func(context.Context, *topics.Admin) error {
			group := fs.String("group", "", "consumer group (required)")
			topicList := fs.String("topic", "", "topics, comma-separated (required)")
			earliest := fs.Bool("to-earliest", false, "to the log start")
			latest := fs.Bool("to-latest", false, "to the end (skip what is there)")
			datetime := fs.String("to-datetime", "", "to the first record at or after this time (RFC 3339)")
			offset := fs.Int64("to-offset", -1, "to this offset (clamped to each partition's range)")
			execute := fs.Bool("execute", false, "commit the new offsets (default: print the plan only)")
			return func(ctx context.Context, a *topics.Admin) error {
				if *group == "" || *topicList == "" {
					return usageError{Err: errors.New("--group and --topic are required")}
				}
				to := topics.ResetTo{Earliest: *earliest, Latest: *latest}
				if *datetime != "" {
					ts, err := time.Parse(time.RFC3339, *datetime)
					if err != nil {
						return usageError{Err: fmt.Errorf("--to-datetime %q: %v", *datetime, err)}
					}
					to.Time = ts
				}
				if *offset >= 0 {
					to.Offset = offset
				}
				plan, err := a.ResetOffsets(ctx, *group, strings.Split(*topicList, ","), to, *execute)
				if err != nil && plan == nil {
					if errors.Is(err, topics.ErrGroupActive) {
						return fmt.Errorf("%w: stop its consumers first", err)
					}
					return err
				}
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "TOPIC\tPARTITION\tFROM\tTO")
				for _, c := range plan {
					from := strconv.FormatInt(c.From, 10)
					if c.From < 0 {
						from = "-"
					}
					fmt.Fprintf(tw, "%s\t%d\t%s\t%d\n", c.Topic, c.Partition, from, c.To)
				}
				tw.Flush()
				if !*execute {
					fmt.Fprintln(out, "dry run: nothing committed (add --execute to apply)")
				} else if err == nil {
					fmt.Fprintln(out, "committed")
				}
				return err
			}
		})
	subs := []*ffcli.Command{list, lag("describe", "a group's state and each partition's offsets, lag and member"),
		lag("lag", "each partition's committed offset, end offset and lag"), reset}
	return &ffcli.Command{
		Name: "groups", ShortUsage: "broker groups <list|describe|lag|reset> [flags]",
		ShortHelp:   "inspect consumer groups and reset their offsets on any Kafka-compatible cluster",
		Subcommands: subs,
		Exec:        cli.NeedSubcommand("broker groups", subs),
	}
}
