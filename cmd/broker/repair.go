package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/factorywire/factorywire/broker"
	"github.com/factorywire/factorywire/internal/cli"
	"github.com/factorywire/factorywire/storage/commitlog"
)

// exitCorrupt is the exit status of broker scrub when it found damage: the
// scrub ran (not 1, a failure) and the data is not all there, as sink
// query gaps uses 3 for missing samples.
const exitCorrupt = 3

// partitionFlags are --data-dir, --topic and --partition of scrub and
// repair.
type partitionFlags struct {
	dataDir   *string
	topic     *string
	partition *int
}

func addPartitionFlags(flags *flag.FlagSet, partitionHelp string) partitionFlags {
	return partitionFlags{
		dataDir:   flags.String("data-dir", "", "the broker's data directory (required)"),
		topic:     flags.String("topic", "", "topic"),
		partition: flags.Int("partition", -1, partitionHelp),
	}
}

// partitions returns the partitions the flags name, from the data dir's
// topic catalog: all of them, a topic's, or one.
func (f partitionFlags) partitions() ([]broker.PartitionRef, error) {
	if *f.dataDir == "" {
		return nil, usageError{Err: errors.New("--data-dir is required")}
	}
	if *f.partition >= 0 && *f.topic == "" {
		return nil, usageError{Err: errors.New("--partition needs --topic")}
	}
	all, err := broker.DataDirPartitions(*f.dataDir)
	if err != nil {
		return nil, err
	}
	var ps []broker.PartitionRef
	for _, p := range all {
		if (*f.topic == "" || p.Topic == *f.topic) && (*f.partition < 0 || p.Partition == int32(*f.partition)) {
			ps = append(ps, p)
		}
	}
	if len(ps) == 0 && *f.topic != "" {
		if *f.partition >= 0 {
			return nil, usageError{Err: fmt.Errorf("data dir %s has no partition %s-%d", *f.dataDir, *f.topic, *f.partition)}
		}
		return nil, usageError{Err: fmt.Errorf("data dir %s has no topic %q", *f.dataDir, *f.topic)}
	}
	return ps, nil
}

func scrubCommand(out io.Writer) *ffcli.Command {
	flags := flag.NewFlagSet("broker scrub", flag.ContinueOnError)
	f := addPartitionFlags(flags, "partition of --topic (default: all of them)")
	return &ffcli.Command{
		Name:       "scrub",
		ShortUsage: "broker scrub --data-dir DIR [--topic T [--partition P]]",
		ShortHelp:  "verify every batch's CRC of the partition logs, read-only; safe while the broker runs",
		LongHelp: "scrub reads every segment of the partitions named (all of them by default) and prints, per\n" +
			"partition, OK or each damaged range: file, byte position, the offsets lost and why. It changes\n" +
			"nothing and takes no lock. Exit status: 0 when every log is intact, 3 when damage was found\n" +
			"(repair it with broker repair), 1 when the scrub could not run, 2 for a usage error.",
		FlagSet: flags,
		Options: []ff.Option{ff.WithEnvVarPrefix(envPrefix)},
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return usageError{Err: fmt.Errorf("unexpected arguments %q", args)}
			}
			ps, err := f.partitions()
			if err != nil {
				return err
			}
			return scrub(ctx, out, *f.dataDir, ps)
		},
	}
}

func scrub(ctx context.Context, out io.Writer, dataDir string, ps []broker.PartitionRef) error {
	var ranges, batches, bytes int64
	var damaged []string
	var firstDamaged broker.PartitionRef
	for _, p := range ps {
		name := p.Name()
		r, err := commitlog.Scrub(ctx, p.Dir, commitlog.ScrubOptions{})
		if err != nil {
			return fmt.Errorf("scrub %s: %w", name, err)
		}
		batches += r.Batches
		bytes += r.Bytes
		ds := r.Damaged()
		if len(ds) == 0 {
			fmt.Fprintf(out, "%s: OK: %s, %d batches, %d bytes%s\n", name, plural(len(r.Segments), "segment"), r.Batches, r.Bytes, tailNote(r))
			continue
		}
		if ranges == 0 {
			firstDamaged = p
		}
		ranges += int64(len(ds))
		damaged = append(damaged, name)
		fmt.Fprintf(out, "%s: DAMAGED: %s in %s, %d valid batches\n", name, plural(len(ds), "damaged range"), plural(len(r.Segments), "segment"), r.Batches)
		for _, d := range ds {
			fmt.Fprintf(out, "  %s\n", describeRange(d))
		}
	}
	fmt.Fprintf(out, "scrubbed %s, %d batches, %d bytes: ", plural(len(ps), "partition"), batches, bytes)
	if ranges == 0 {
		fmt.Fprintln(out, "no damage")
		return nil
	}
	fmt.Fprintf(out, "%s in %s\n", plural(int(ranges), "damaged range"), strings.Join(damaged, ", "))
	return cli.ExitError{Code: exitCorrupt, Err: fmt.Errorf(
		"%s in %s; keep a copy of the partition directory, stop the broker, then run: broker repair --data-dir %s --topic %s --partition %d",
		plural(int(ranges), "damaged range"), plural(len(damaged), "partition"), dataDir, firstDamaged.Topic, firstDamaged.Partition)}
}

// describeRange says where a damaged range is, what it held and why it is
// damaged, in one line.
func describeRange(d commitlog.DamagedRange) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s byte %d", d.Segment, d.Start)
	if d.End > d.Start {
		fmt.Fprintf(&b, " to %d (%d bytes)", d.End, d.End-d.Start)
	}
	switch {
	case d.AtEnd && d.Offsets() > 0:
		fmt.Fprintf(&b, ": the end of the log from offset %d (headers claim through offset %d)", d.FirstOffset, d.LastOffset)
	case d.AtEnd:
		fmt.Fprintf(&b, ": the end of the log from offset %d", d.FirstOffset)
	case d.Offsets() > 0:
		fmt.Fprintf(&b, ": offsets %d to %d (%d offsets)", d.FirstOffset, d.LastOffset, d.Offsets())
	default:
		fmt.Fprintf(&b, ": no offsets (bytes between batches)")
	}
	if d.ClaimedRecords >= 0 {
		fmt.Fprintf(&b, ", headers claim %d records", d.ClaimedRecords)
	}
	fmt.Fprintf(&b, ": %v", d.Err.Err)
	return b.String()
}

// tailNote mentions bytes after the active segment's last whole batch.
func tailNote(r *commitlog.ScrubReport) string {
	s := r.Segments
	if len(s) == 0 || s[len(s)-1].Tail == 0 {
		return ""
	}
	return fmt.Sprintf(" (the active segment ends with %d bytes of an unfinished append, which the broker truncates at start)", s[len(s)-1].Tail)
}

func repairCommand(out io.Writer) *ffcli.Command {
	flags := flag.NewFlagSet("broker repair", flag.ContinueOnError)
	f := addPartitionFlags(flags, "partition (required)")
	dryRun := flags.Bool("dry-run", false, "print what would be done, change nothing (allowed while the broker runs)")
	// warn would show the verifying Open's "not closed cleanly" line,
	// which the repair causes on purpose.
	logLevel := flags.String("log-level", "error", "debug, info, warn or error")
	logFormat := flags.String("log-format", "text", cli.LogFormatUsage)
	return &ffcli.Command{
		Name:       "repair",
		ShortUsage: "broker repair --data-dir DIR --topic T --partition P [--dry-run]",
		ShortHelp:  "move a partition's damaged ranges to quarantine files, keeping offsets contiguous; the broker must be stopped",
		LongHelp: "repair finds every damaged range of one partition's log, copies its bytes to a quarantine file\n" +
			"beside the segment (SEGMENT.log.quarantine-POS), puts an empty placeholder batch covering the lost\n" +
			"offsets in its place (consumers skip it) or, for damage at the end of the log, truncates the log,\n" +
			"rebuilds the indexes and verifies the log. It prints the offsets lost and the records their\n" +
			"headers claimed. It refuses while a broker holds the data dir. A healthy log is left unchanged.\n" +
			"Keep a copy of the partition directory first.",
		FlagSet: flags,
		Options: []ff.Option{ff.WithEnvVarPrefix(envPrefix)},
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return usageError{Err: fmt.Errorf("unexpected arguments %q", args)}
			}
			if *f.topic == "" || *f.partition < 0 {
				return usageError{Err: errors.New("--topic and --partition are required: repair works on one partition")}
			}
			logger, err := cli.Logger(*logLevel, *logFormat)
			if err != nil {
				return err
			}
			ps, err := f.partitions()
			if err != nil {
				return err
			}
			p := ps[0]
			if _, err := os.Stat(p.Dir); errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("partition %s has no log directory %s", p.Name(), p.Dir)
			}
			if !*dryRun {
				unlock, err := broker.LockDataDir(*f.dataDir)
				if err != nil {
					return fmt.Errorf("repair refused: %w (a dry run or broker scrub may run meanwhile)", err)
				}
				defer unlock()
			}
			rep, err := commitlog.Repair(p.Dir, commitlog.RepairOptions{DryRun: *dryRun, Log: commitlog.Options{Logger: logger}})
			if err != nil {
				return err
			}
			printRepair(out, p.Name(), rep)
			return nil
		},
	}
}

func printRepair(out io.Writer, name string, rep *commitlog.RepairReport) {
	if len(rep.Ranges) == 0 {
		fmt.Fprintf(out, "%s: no damage found (%d batches, %d bytes checked); nothing changed%s\n",
			name, rep.Scrub.Batches, rep.Scrub.Bytes, tailNote(rep.Scrub))
		return
	}
	would := func(did, will string) string {
		if rep.DryRun {
			return will
		}
		return did
	}
	fmt.Fprintf(out, "%s: %s in %s\n", name, plural(len(rep.Ranges), "damaged range"), rep.Dir)
	var lost, quarantined, claimed int64
	for i, r := range rep.Ranges {
		fmt.Fprintf(out, "  %d. %s\n", i+1, describeRange(r.DamagedRange))
		if r.Quarantine != "" {
			fmt.Fprintf(out, "     %s %d bytes to %s\n", would("moved", "would move"), r.End-r.Start, r.Quarantine)
			quarantined += r.End - r.Start
		}
		switch {
		case r.Truncated:
			fmt.Fprintf(out, "     %s the log at offset %d: later records take these offsets again\n", would("truncated", "would truncate"), r.FirstOffset)
		case r.Placeholders > 0:
			fmt.Fprintf(out, "     %s by an empty placeholder batch for offsets %d to %d, which consumers skip\n",
				would("replaced", "would be replaced"), r.FirstOffset, r.LastOffset)
		}
		lost += r.Offsets()
		claimed += max(r.ClaimedRecords, 0)
	}
	if rep.DryRun {
		fmt.Fprintf(out, "dry run: nothing changed; %d offsets and %d bytes would go to quarantine (headers claim %d records)\n", lost, quarantined, claimed)
		return
	}
	holds := fmt.Sprintf("the log holds offsets %d to %d", rep.StartOffset, rep.EndOffset-1)
	if rep.EndOffset == rep.StartOffset {
		holds = fmt.Sprintf("the log is empty, its next offset %d", rep.EndOffset)
	}
	fmt.Fprintf(out, "repaired %s: %d offsets lost (headers claim %d records), %d bytes in quarantine; %s\n",
		name, lost, claimed, quarantined, holds)
}

// plural returns "1 range" or "n ranges".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
