// Package benchkit is what the benchmark tools (cmd/brokerbench and
// cmd/gatewaybench, their logic in internal/brokerbench and
// internal/gatewaybench) share: the description of the machine and of the
// source a run measured, child processes, and a command line of flags with
// environment twins.
package benchkit

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/peterbourgon/ff/v3"

	"github.com/factorywire/factorywire/internal/procstat"
)

// Machine describes where a run happened, for a report.
type Machine struct {
	CPUs      int
	Model     string
	MemTotal  string
	Kernel    string
	GoVersion string
	LoadStart string // procstat.LoadAvg when the run began
	LoadEnd   string // and when it ended: the caller sets it
	Source    string // SourceFingerprint of the measured packages
}

// ReadMachine describes this machine now, and the source of sourceDirs.
func ReadMachine(sourceDirs ...string) Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	m.Model = procstat.FirstField("/proc/cpuinfo", "model name")
	if kb := procstat.FirstField("/proc/meminfo", "MemTotal"); kb != "" {
		var n int64
		fmt.Sscanf(kb, "%d", &n)
		m.MemTotal = fmt.Sprintf("%.1f GiB", float64(n)/(1<<20))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.LoadStart = procstat.LoadAvg()
	m.Source = SourceFingerprint(sourceDirs)
	return m
}

// SourceFingerprint identifies the code a run measured, when run from the
// module root (as `go run ./cmd/...` is): a SHA-256 prefix over the
// non-test Go files of dirs and the newest modification time among them.
// It returns "" elsewhere.
func SourceFingerprint(dirs []string) string {
	if b, err := os.ReadFile("go.mod"); err != nil || !strings.HasPrefix(string(b), "module github.com/factorywire/factorywire\n") {
		return ""
	}
	h := sha256.New()
	var newest time.Time
	files := 0
	for _, dir := range dirs {
		names, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			return ""
		}
		slices.Sort(names)
		for _, name := range names {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			b, err := os.ReadFile(name)
			if err != nil {
				return ""
			}
			if st, err := os.Stat(name); err == nil && st.ModTime().After(newest) {
				newest = st.ModTime()
			}
			fmt.Fprintf(h, "%s %d\n", name, len(b))
			h.Write(b)
			files++
		}
	}
	return fmt.Sprintf("`%x` (%d files in %s; newest modified %s)", h.Sum(nil)[:6], files,
		strings.Join(dirs, ", "), newest.UTC().Format("2006-01-02 15:04:05 MST"))
}

// Command is a benchmark tool's command line: flags, each with an
// environment twin (EnvPrefix_ and the name in upper case, '-' as '_').
type Command struct {
	Name      string          // the tool, for messages: "gatewaybench"
	Summary   string          // what it does, for -h
	EnvPrefix string          // "GATEWAYBENCH"
	Hidden    map[string]bool // flags accepted but left out of -h
}

// Parse parses args into fs (flags, then their environment twins) and
// returns the names of the flags set. On -h it returns ok false and status
// 0; on a bad flag or a stray argument it prints the error and returns ok
// false and status 2.
func (c Command) Parse(fs *flag.FlagSet, args []string) (set map[string]bool, status int, ok bool) {
	fs.Usage = func() { c.usage(fs) }
	if err := ff.Parse(fs, args, ff.WithEnvVarPrefix(c.EnvPrefix)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, 0, false
		}
		fmt.Fprintf(os.Stderr, "%s: %v\n", c.Name, err)
		return nil, 2, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "%s: unexpected arguments %q (flags only; see -h)\n", c.Name, fs.Args())
		return nil, 2, false
	}
	set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set, 0, true
}

// usage prints every flag but the hidden ones.
func (c Command) usage(fs *flag.FlagSet) {
	w := fs.Output()
	fmt.Fprintf(w, "Usage: %s [flags]\n\n%s\n\n", c.Name, c.Summary)
	fs.VisitAll(func(f *flag.Flag) {
		if c.Hidden[f.Name] {
			return
		}
		name, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  -%s %s\n    \t%s", f.Name, name, usage)
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
	fmt.Fprintf(w, "\nEvery flag has an environment twin: %s_ and the name in upper case, '-' as '_'.\n", c.EnvPrefix)
}

// Main parses args into a flag set that register fills, lets prepare
// adjust and check the settings (given the flags set; an error is a usage
// error, status 2), then runs the benchmark until it ends or SIGINT or
// SIGTERM arrives (an error is status 1). commandLine is the invocation,
// for the report. A closed stdout (`tool | head`) does not kill the
// process before it has stopped its children and removed their data:
// SIGPIPE is ignored, so writing fails with EPIPE and the run ends through
// its error path.
func (c Command) Main(args []string, register func(*flag.FlagSet), prepare func(set map[string]bool) error,
	run func(ctx context.Context, commandLine string) error) int {
	fs := flag.NewFlagSet(c.Name, flag.ContinueOnError)
	register(fs)
	set, status, ok := c.Parse(fs, args)
	if !ok {
		return status
	}
	if err := prepare(set); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", c.Name, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	signal.Ignore(syscall.SIGPIPE)
	if err := run(ctx, strings.TrimSpace(c.Name+" "+strings.Join(args, " "))); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", c.Name, err)
		return 1
	}
	return 0
}

// WriteFailures writes a report's "Failures" section, if there are any.
func WriteFailures(w io.Writer, failures []string) {
	if len(failures) == 0 {
		return
	}
	fmt.Fprintf(w, "## Failures\n\n")
	for _, f := range failures {
		fmt.Fprintf(w, "- %s\n", f)
	}
	fmt.Fprintln(w)
}
