package benchkit

import (
	"flag"
	"io"
	"strings"
	"testing"
)

func TestCommandParse(t *testing.T) {
	cmd := Command{Name: "testbench", Summary: "Tests.", EnvPrefix: "TESTBENCH", Hidden: map[string]bool{"secret": true}}
	newFS := func() (*flag.FlagSet, *int, *string) {
		fs := flag.NewFlagSet("testbench", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		runs := fs.Int("runs", 2, "runs")
		fs.String("secret", "", "")
		dir := fs.String("out-dir", "", "where")
		return fs, runs, dir
	}

	t.Setenv("TESTBENCH_OUT_DIR", "/from/env")
	fs, runs, dir := newFS()
	set, status, ok := cmd.Parse(fs, []string{"-runs", "5"})
	if !ok || status != 0 || *runs != 5 || *dir != "/from/env" {
		t.Fatalf("ok %v status %d runs %d dir %q", ok, status, *runs, *dir)
	}
	if !set["runs"] || set["secret"] {
		t.Errorf("set %v: want runs (given) and not secret", set)
	}

	for _, tc := range []struct {
		args   []string
		status int
	}{
		{[]string{"-h"}, 0},
		{[]string{"-runs", "x"}, 2},
		{[]string{"-runs", "3", "stray"}, 2},
		{[]string{"-nope"}, 2},
	} {
		fs, _, _ := newFS()
		if _, status, ok := cmd.Parse(fs, tc.args); ok || status != tc.status {
			t.Errorf("%q: ok %v status %d, want not ok and %d", tc.args, ok, status, tc.status)
		}
	}

	var usage strings.Builder
	fs, _, _ = newFS()
	fs.SetOutput(&usage)
	cmd.Parse(fs, []string{"-h"})
	u := usage.String()
	if !strings.Contains(u, "Usage: testbench [flags]") || !strings.Contains(u, "-runs") || strings.Contains(u, "-secret") || !strings.Contains(u, "TESTBENCH_") {
		t.Errorf("usage:\n%s", u)
	}
}

func TestSourceFingerprint(t *testing.T) {
	if got := SourceFingerprint([]string{"."}); got != "" {
		t.Errorf("outside the module root: %q, want empty", got)
	}
	t.Chdir("../..")
	a := SourceFingerprint([]string{"internal/benchkit"})
	if !strings.HasPrefix(a, "`") || !strings.Contains(a, "1 files in internal/benchkit") {
		t.Errorf("fingerprint %q", a)
	}
	if b := SourceFingerprint([]string{"internal/procstat"}); b == a || b == "" {
		t.Errorf("two packages, fingerprints %q and %q", a, b)
	}
}
