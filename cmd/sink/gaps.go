package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/factorywire/factorywire/internal/cli"
	"github.com/factorywire/factorywire/storage/mongots"
)

// gapsTimeout is the default --timeout of sink query gaps, which reads
// every sample of the range.
const gapsTimeout = 10 * time.Minute

// exitLoss is the exit status of sink query gaps when samples are lost.
const exitLoss = 3

const gapsLongHelp = `Lists, per device of the factory's class (or of --device alone), the seqs
missing between the samples stored with ts in [--from, --to), the seqs stored
more than once, and the restarts of a device's seq (a gateway whose spool was
wiped starts again at 0: the samples it had not forwarded are lost, and how
many cannot be told). It sends one plain find, so the FerretDB stand-in runs it
too (mongots.Store.Gaps documents it); it reads every sample of the range, so
--timeout is 10m by default.

A seq lost before the first sample in the range or after the last is not
seen: compare each device's LAST TS with --to, or widen the range.

Exit status: 0 when no seq is missing and none restarted (duplicates are
listed but lose nothing); 3 when a seq is missing, a seq restarted, or the
range holds no sample at all (nothing arrived, or a misspelt factory, class
or device); 1 when the query fails; 2 for a usage error. Lost samples exit 3,
not 1, so that a check (cron, a Nagios-style probe) can tell them from a check
that could not run.`

// queryGaps is the Exec of sink query gaps.
func queryGaps(stdout io.Writer) func(ctx context.Context, q queryFlags, st *mongots.Store, coll string) error {
	return func(ctx context.Context, q queryFlags, st *mongots.Store, coll string) error {
		from, to, err := q.span()
		if err != nil {
			return err
		}
		if strings.Contains(*q.device, ",") {
			return usageError{Err: fmt.Errorf("--device %q: gaps takes one device, or none for every device", *q.device)}
		}
		gaps, err := st.Gaps(ctx, coll, *q.device, from, to)
		if err != nil {
			if errors.Is(err, mongots.ErrInvalidArgument) {
				return usageError{Err: err}
			}
			return err
		}
		if *q.json {
			err = printGapsJSON(stdout, gaps)
		} else {
			err = printGaps(stdout, gaps)
		}
		if err != nil {
			return err
		}
		return gapsVerdict(stdout, coll, *q.device, from, to, gaps, !*q.json)
	}
}

// gapsVerdict prints the summary line (unless summary is false) and
// returns nil, or an ExitError with status 3 saying what was lost.
func gapsVerdict(w io.Writer, coll, device string, from, to time.Time, gaps []mongots.DeviceGaps, summary bool) error {
	what := coll
	if device != "" {
		what += " device " + device
	}
	// To the millisecond, as the find compares them with ts.
	span := fmt.Sprintf("from %s to %s", from.UTC().Truncate(time.Millisecond).Format(time.RFC3339Nano),
		to.UTC().Truncate(time.Millisecond).Format(time.RFC3339Nano))
	if len(gaps) == 0 {
		if summary {
			fmt.Fprintf(w, "%s %s: no samples\n", what, span)
		}
		return cli.ExitError{Code: exitLoss, Err: fmt.Errorf("no samples of %s %s: nothing arrived, or the factory, class or device is misspelt", what, span)}
	}
	var (
		seen, ranges, dupRanges, dups, restarts int64
		missing                                 uint64
		lossy                                   []string
	)
	for _, g := range gaps {
		seen += g.Seen
		ranges += g.MissingRanges
		missing += g.MissingSamples
		dupRanges += g.DuplicateRanges
		dups += g.DuplicateSamples
		restarts += g.RestartCount
		if !g.Lossless() {
			lossy = append(lossy, g.Device)
		}
	}
	if summary {
		fmt.Fprintf(w, "%s %s: %s, %s; %s missing in %s, %s (%s), %s\n", what, span,
			plural(int64(len(gaps)), "device"), plural(seen, "sample"), plural(int64(missing), "seq"), plural(ranges, "range"),
			plural(dups, "duplicate"), plural(dupRanges, "range"), plural(restarts, "restart"))
	}
	if len(lossy) == 0 {
		return nil
	}
	names := strings.Join(lossy[:min(len(lossy), 10)], ", ")
	if len(lossy) > 10 {
		names += fmt.Sprintf(" and %d more", len(lossy)-10)
	}
	return cli.ExitError{Code: exitLoss, Err: fmt.Errorf("%s %s: %s missing and %s, in %s: %s",
		what, span, plural(int64(missing), "seq"), plural(restarts, "restart"), plural(int64(len(lossy)), "device"), names)}
}

// plural returns "1 device", "2 devices".
func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

const tsFormat = "2006-01-02T15:04:05.000Z"

// printGaps prints a table of the devices, then one line per finding, each
// device's missing ranges, duplicates and restarts in that order.
func printGaps(w io.Writer, gaps []mongots.DeviceGaps) error {
	if len(gaps) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tSEEN\tSEQ\tFIRST TS\tLAST TS\tMISSING\tDUPLICATES\tRESTARTS")
	for _, g := range gaps {
		fmt.Fprintf(tw, "%s\t%d\t%d..%d\t%s\t%s\t%d\t%d\t%d\n", g.Device, g.Seen, g.FirstSeq, g.LastSeq,
			g.FirstTime.UTC().Format(tsFormat), g.LastTime.UTC().Format(tsFormat), g.MissingSamples, g.DuplicateSamples, g.RestartCount)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, g := range gaps {
		var shown uint64
		for _, r := range g.Missing {
			fmt.Fprintf(tw, "%s\tmissing\t%s\n", g.Device, r)
			shown += r.Len()
		}
		if more := g.MissingRanges - int64(len(g.Missing)); more > 0 {
			fmt.Fprintf(tw, "%s\tmissing\t%s more (%s) after the first %d\n", g.Device, plural(more, "range"), plural(int64(g.MissingSamples-shown), "seq"), len(g.Missing))
		}
		for _, r := range g.Duplicates {
			fmt.Fprintf(tw, "%s\tduplicate\t%s\n", g.Device, r)
		}
		if more := g.DuplicateRanges - int64(len(g.Duplicates)); more > 0 {
			fmt.Fprintf(tw, "%s\tduplicate\t%s more after the first %d\n", g.Device, plural(more, "range"), len(g.Duplicates))
		}
		for _, r := range g.Restarts {
			fmt.Fprintf(tw, "%s\trestart\tseq %d at %s, then %d at %s\n", g.Device, r.From, r.FromTime.UTC().Format(tsFormat), r.To, r.Time.UTC().Format(tsFormat))
		}
		if more := g.RestartCount - int64(len(g.Restarts)); more > 0 {
			fmt.Fprintf(tw, "%s\trestart\t%s more after the first %d\n", g.Device, plural(more, "restart"), len(g.Restarts))
		}
	}
	return tw.Flush()
}

// gapsJSON is one line of sink query gaps --format json.
type gapsJSON struct {
	Device           string        `json:"device"`
	Seen             int64         `json:"seen"`
	FirstSeq         uint64        `json:"first_seq"`
	FirstTS          time.Time     `json:"first_ts"`
	LastSeq          uint64        `json:"last_seq"`
	LastTS           time.Time     `json:"last_ts"`
	Missing          []rangeJSON   `json:"missing"`
	MissingRanges    int64         `json:"missing_ranges"`
	MissingSamples   uint64        `json:"missing_samples"`
	Duplicates       []rangeJSON   `json:"duplicates"`
	DuplicateRanges  int64         `json:"duplicate_ranges"`
	DuplicateSamples int64         `json:"duplicate_samples"`
	Restarts         []restartJSON `json:"restarts"`
	RestartCount     int64         `json:"restart_count"`
}

type rangeJSON struct {
	First uint64 `json:"first"`
	Last  uint64 `json:"last"`
}

type restartJSON struct {
	FromSeq uint64    `json:"from_seq"`
	FromTS  time.Time `json:"from_ts"`
	ToSeq   uint64    `json:"to_seq"`
	TS      time.Time `json:"ts"`
}

func ranges(rs []mongots.SeqRange) []rangeJSON {
	out := make([]rangeJSON, len(rs))
	for i, r := range rs {
		out[i] = rangeJSON{r.First, r.Last}
	}
	return out
}

// printGapsJSON prints one JSON object per device; every list is present,
// empty when there is nothing in it.
func printGapsJSON(w io.Writer, gaps []mongots.DeviceGaps) error {
	enc := json.NewEncoder(w)
	for _, g := range gaps {
		restarts := make([]restartJSON, len(g.Restarts))
		for i, r := range g.Restarts {
			restarts[i] = restartJSON{r.From, r.FromTime.UTC(), r.To, r.Time.UTC()}
		}
		if err := enc.Encode(gapsJSON{
			Device: g.Device, Seen: g.Seen,
			FirstSeq: g.FirstSeq, FirstTS: g.FirstTime.UTC(), LastSeq: g.LastSeq, LastTS: g.LastTime.UTC(),
			Missing: ranges(g.Missing), MissingRanges: g.MissingRanges, MissingSamples: g.MissingSamples,
			Duplicates: ranges(g.Duplicates), DuplicateRanges: g.DuplicateRanges, DuplicateSamples: g.DuplicateSamples,
			Restarts: restarts, RestartCount: g.RestartCount,
		}); err != nil {
			return err
		}
	}
	return nil
}
