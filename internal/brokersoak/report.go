package brokersoak

import (
	"fmt"
	"io"
	"time"

	"github.com/factorywire/factorywire/broker"
	"github.com/factorywire/factorywire/internal/benchkit"
)

// KindReport is one hostile client's counters.
type KindReport struct {
	Name, What, Expect string
	Outcomes           []Outcome
}

// Report is what a soak found. Failures lists what makes it fail.
type Report struct {
	Config       Config
	Machine      benchkit.Machine
	CommandLine  string // set by the caller, for the report
	Started      time.Time
	Duration     time.Duration // of the hostile phase
	Interrupted  bool          // the hostile phase ended early (SIGINT)
	WorkDir      string
	BrokerBin    string
	BrokerConfig string        // the YAML the broker ran with
	Limits       broker.Config // as the broker decoded it
	BrokerLog    string
	BrokerExit   string // the broker's exit error; "" after a clean stop

	// The pair.
	Produced, Acked, Failed, BufferFull int
	Consumed, Redelivered               int
	// Lost counts acknowledged records the consumer never read;
	// Mismatched, those read at their offset with another key or
	// sequence.
	Lost, Mismatched int
	Log              LogCheck
	LogCheckErr      string
	PairErrors       []string
	ProducerErrors   map[string]int
	ConsumerErrors   map[string]int

	// The broker process.
	BaselineRSS  int64 // at the end of the warm-up
	RSSReference int64 // BaselineRSS + queued_max_request_bytes + queued_max_response_bytes
	Peaks        Peaks
	FilesBound   int

	Kinds       []*KindReport
	Groups      GroupCheck
	LogSummary  LogSummary
	LogNote     string
	Metrics     map[string]float64
	MetricsNote string
}

// Failures lists what failed the run: acknowledged records lost (to the
// consumer or missing from the log), more open files than the bound, the
// broker crashing or failing to stop cleanly, no record acknowledged at
// all; with Config.Strict also every unexpected outcome of a hostile
// client, a hostile client that never saw its expected outcome,
// duplicates, reorders, churned groups that did not expire and a peak RSS
// above the reference.
func (r *Report) Failures() []string {
	var f []string
	if r.Acked == 0 {
		f = append(f, "no record was acknowledged: the soak proved nothing")
	}
	if r.Lost > 0 {
		f = append(f, fmt.Sprintf("%d acknowledged records were never consumed", r.Lost))
	}
	if r.Mismatched > 0 {
		f = append(f, fmt.Sprintf("%d acknowledged offsets were consumed holding another record", r.Mismatched))
	}
	if r.LogCheckErr != "" {
		f = append(f, "final read of the log: "+r.LogCheckErr)
	}
	if r.Log.Missing > 0 {
		f = append(f, fmt.Sprintf("%d acknowledged records are missing from the log", r.Log.Missing))
	}
	if r.Log.Mismatched > 0 {
		f = append(f, fmt.Sprintf("%d acknowledged offsets of the log hold another record", r.Log.Mismatched))
	}
	if r.Peaks.Files.Files > r.FilesBound {
		f = append(f, fmt.Sprintf("the broker had %d files open (at %v), more than the bound %d", r.Peaks.Files.Files, r.Peaks.Files.At, r.FilesBound))
	}
	if r.BrokerExit != "" {
		f = append(f, "the broker did not stop cleanly: "+r.BrokerExit)
	}
	if r.LogSummary.Panics > 0 {
		f = append(f, fmt.Sprintf("the broker's log holds %d panics or fatal errors", r.LogSummary.Panics))
	}
	if !r.Config.Strict {
		return f
	}
	for _, k := range r.Kinds {
		seen := false
		for _, o := range k.Outcomes {
			switch o.Class {
			case Unexpected:
				f = append(f, fmt.Sprintf("%s: %s (%d times)", k.Name, o.Name, o.Count))
			case Expected:
				seen = true
			}
		}
		if !seen {
			f = append(f, fmt.Sprintf("%s: never saw what it expects (%s)", k.Name, k.Expect))
		}
	}
	if r.Log.Duplicates > 0 {
		f = append(f, fmt.Sprintf("%d duplicate records in the log", r.Log.Duplicates))
	}
	if r.Log.Reorders > 0 {
		f = append(f, fmt.Sprintf("%d records out of their key's order in the log", r.Log.Reorders))
	}
	if r.Groups.Remaining > 0 {
		f = append(f, fmt.Sprintf("%d churned groups still listed after their offsets should have expired", r.Groups.Remaining))
	}
	if r.Peaks.RSS.RSS > r.RSSReference {
		f = append(f, fmt.Sprintf("peak RSS %s above the reference %s", mib(r.Peaks.RSS.RSS), mib(r.RSSReference)))
	}
	return f
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// WriteMarkdown writes the report as Markdown.
func (r *Report) WriteMarkdown(w io.Writer) {
	fmt.Fprintf(w, "# Broker soak\n\n")
	if r.CommandLine != "" {
		fmt.Fprintf(w, "`%s`, started %s.\n\n", r.CommandLine, r.Started.UTC().Format("2006-01-02 15:04 MST"))
	}
	m := r.Machine
	fmt.Fprintf(w, "Machine: %d CPUs (%s), %s, Linux %s, %s; load %s at the start, %s at the end.", m.CPUs, m.Model, m.MemTotal, m.Kernel, m.GoVersion, m.LoadStart, m.LoadEnd)
	if m.Source != "" {
		fmt.Fprintf(w, " Source %s.", m.Source)
	}
	fmt.Fprintf(w, "\n\nHostile phase: %v", r.Duration)
	if r.Interrupted {
		fmt.Fprintf(w, " (interrupted; asked for %v)", r.Config.Duration)
	}
	fmt.Fprintf(w, ", after a %v warm-up of the pair alone. Broker: `%s`; work directory `%s`.\n\n", r.Config.Warmup, r.BrokerBin, r.WorkDir)

	if f := r.Failures(); len(f) > 0 {
		fmt.Fprintf(w, "**FAILED**\n\n")
		benchkit.WriteFailures(w, f)
	} else {
		fmt.Fprintf(w, "**PASSED**")
		if !r.Config.Strict {
			fmt.Fprintf(w, " (lost records, open files, broker exit; run with -strict to hold every expectation below too)")
		}
		fmt.Fprintf(w, "\n\n")
	}

	fmt.Fprintf(w, "## Records\n\n| | |\n|---|---:|\n")
	fmt.Fprintf(w, "| offered to the producer | %d |\n| acknowledged (acks=all, idempotent) | %d |\n", r.Produced, r.Acked)
	fmt.Fprintf(w, "| failed (not acknowledged) | %d |\n| not offered (producer buffer full) | %d |\n", r.Failed, r.BufferFull)
	fmt.Fprintf(w, "| consumed by the group member | %d |\n| consumed again after a rebalance | %d |\n", r.Consumed, r.Redelivered)
	fmt.Fprintf(w, "| **lost** (acknowledged, never consumed; must be 0) | **%d** |\n", r.Lost)
	fmt.Fprintf(w, "| consumed holding another record than acknowledged (must be 0) | %d |\n", r.Mismatched)
	if r.LogCheckErr != "" {
		fmt.Fprintf(w, "| final read of the log | failed: %s |\n", r.LogCheckErr)
	} else {
		fmt.Fprintf(w, "| records in the log (final read from the start) | %d |\n", r.Log.Records)
		fmt.Fprintf(w, "| acknowledged, missing from the log (must be 0) | %d |\n", r.Log.Missing)
		fmt.Fprintf(w, "| duplicates in the log (key and sequence twice) | %d |\n", r.Log.Duplicates)
		fmt.Fprintf(w, "| reorders in the log (a key's sequence going back) | %d |\n", r.Log.Reorders)
	}
	fmt.Fprintln(w)
	writeCounts(w, "Producer errors", r.ProducerErrors)
	writeCounts(w, "Consumer fetch errors (retried by the client)", r.ConsumerErrors)
	for _, e := range r.PairErrors {
		fmt.Fprintf(w, "- pair: %s\n", e)
	}
	if len(r.PairErrors) > 0 {
		fmt.Fprintln(w)
	}

	bc := r.Limits
	fmt.Fprintf(w, "## Broker process\n\n| | peak | bound or reference |\n|---|---:|---|\n")
	fmt.Fprintf(w, "| open files | %d (at %v) | %d = max_connections %d + max_partitions %d × 3 + max_open_closed_segments %d × 3 + %d |\n",
		r.Peaks.Files.Files, r.Peaks.Files.At, r.FilesBound, bc.MaxConnections, bc.MaxPartitions, bc.MaxOpenClosedSegments, openFilesMargin)
	fmt.Fprintf(w, "| sockets | %d (at %v) | max_connections %d |\n", r.Peaks.Sockets.Sockets, r.Peaks.Sockets.At, bc.MaxConnections)
	fmt.Fprintf(w, "| other files (the data directory's) | %d (at %v) | %d = max_partitions %d × 3 + max_open_closed_segments %d × 3 + %d |\n",
		r.Peaks.Others.Files-r.Peaks.Others.Sockets, r.Peaks.Others.At, r.FilesBound-bc.MaxConnections, bc.MaxPartitions, bc.MaxOpenClosedSegments, openFilesMargin)
	fmt.Fprintf(w, "| RSS | %s (at %v) | no exact bound; reference %s = baseline %s + queued_max_request_bytes %s + queued_max_response_bytes %s |\n\n",
		mib(r.Peaks.RSS.RSS), r.Peaks.RSS.At, mib(r.RSSReference), mib(r.BaselineRSS), mib(bc.QueuedMaxRequestBytes), mib(bc.QueuedMaxResponseBytes))
	fmt.Fprintf(w, "%d samples, one a second (%d failed); times are since the broker started listening.\n\n", r.Peaks.Samples, r.Peaks.Errors)

	fmt.Fprintf(w, "## Hostile clients\n\n")
	for _, k := range r.Kinds {
		fmt.Fprintf(w, "### %s\n\n%s. Expected: %s.\n\n", k.Name, capitalize(k.What), k.Expect)
		if len(k.Outcomes) == 0 {
			fmt.Fprintf(w, "No outcome recorded.\n\n")
			continue
		}
		fmt.Fprintf(w, "| outcome | count | |\n|---|---:|---|\n")
		for _, o := range k.Outcomes {
			fmt.Fprintf(w, "| %s | %d | %s |\n", o.Name, o.Count, o.Class)
		}
		fmt.Fprintln(w)
	}
	g := r.Groups
	fmt.Fprintf(w, "Churned groups: %d committed; %d due to expire by the end (last commit more than offsets_retention %v + 2 × offsets_retention_check_interval %v + 2s ago), %d of them still listed (should be 0); %d churned groups listed at the end.",
		g.Churned, g.Due, bc.OffsetsRetention, bc.OffsetsRetentionCheckInterval, g.Remaining, g.Listed)
	if g.Err != "" {
		fmt.Fprintf(w, " Check failed: %s.", g.Err)
	}
	fmt.Fprintf(w, "\n\n")

	fmt.Fprintf(w, "## Limits hit\n\n")
	s := r.LogSummary
	if r.LogNote != "" {
		fmt.Fprintf(w, "The broker's log could not be read: %s.\n\n", r.LogNote)
	}
	if len(s.LimitLines) == 0 {
		fmt.Fprintf(w, "The broker's log names no limit (no `limit=` line).\n\n")
	} else {
		fmt.Fprintf(w, "From the broker's log (a limit is logged at most once a minute with the hits not logged since; hits after its last line are not counted, so these are lower bounds):\n\n")
		fmt.Fprintf(w, "| limit | log lines | hits |\n|---|---:|---:|\n")
		for _, k := range sortedKeys(s.LimitLines) {
			fmt.Fprintf(w, "| %s | %d | ≥ %d |\n", k, s.LimitLines[k], s.LimitHits[k])
		}
		fmt.Fprintln(w)
	}
	if r.MetricsNote != "" {
		fmt.Fprintf(w, "factorywire_broker_limit_hits_total: %s.\n\n", r.MetricsNote)
	}
	if len(r.Metrics) > 0 {
		fmt.Fprintf(w, "| limit | factorywire_broker_limit_hits_total |\n|---|---:|\n")
		for _, k := range sortedKeys(r.Metrics) {
			fmt.Fprintf(w, "| %s | %.0f |\n", k, r.Metrics[k])
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "Broker log `%s`: %d WARN, %d ERROR lines, %d panics.", r.BrokerLog, s.Levels["WARN"], s.Levels["ERROR"], s.Panics)
	for _, e := range s.Errors {
		fmt.Fprintf(w, "\n- ERROR: %s", e)
	}
	fmt.Fprintf(w, "\n\n## Broker config\n\n```yaml\n%s```\n", r.BrokerConfig)
}

func writeCounts(w io.Writer, title string, m map[string]int) {
	if len(m) == 0 {
		return
	}
	fmt.Fprintf(w, "%s:\n\n", title)
	for _, k := range sortedKeys(m) {
		fmt.Fprintf(w, "- %d × %s\n", m[k], k)
	}
	fmt.Fprintln(w)
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}
