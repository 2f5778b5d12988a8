package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/factorywire/factorywire/internal/brokerbench"
	"github.com/factorywire/factorywire/internal/testchild"
)

// The tests run this test binary as the brokerbench command: with argsEnv
// set, TestMain calls main with those arguments instead of running tests.
// The broker children the command starts re-execute this binary too, with
// brokerbench.ChildEnv set and their own arguments: main dispatches them.
const argsEnv = "FACTORYWIRE_TEST_BROKERBENCH_MAIN_ARGS"

func TestMain(m *testing.M) {
	testchild.AsMain("brokerbench", argsEnv, brokerbench.ChildEnv, main)
	os.Exit(m.Run())
}

// runMain runs the command with args and returns its stdout, stderr and
// exit status.
func runMain(t *testing.T, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	return testchild.RunMain(t, argsEnv, args...)
}

// TestTinyRun runs the command on ours alone with tiny counts: its flags
// reach the benchmark, its broker child (this binary, re-executed) serves,
// and the report goes to stdout and to -out. Nothing is timed.
func TestTinyRun(t *testing.T) {
	out := filepath.Join(t.TempDir(), "report.md")
	stdout, stderr, status := runMain(t, "-only", "ours", "-quick", "-scenarios", "100x1", "-records", "1000",
		"-producers", "0", "-rss-records", "0", "-ceiling=false", "-latency-rate", "1000", "-latency-duration", "200ms",
		"-phase-timeout", "1m", "-dir", t.TempDir(), "-out", out)
	if status != 0 {
		t.Fatalf("exit status %d, want 0; stderr:\n%s\nstdout:\n%s", status, stderr, stdout)
	}
	for _, want := range []string{"## Produce", "## Consume", "## Ack latency", "brokerbench -only ours -quick"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("report lacks %q:\n%s", want, stdout)
		}
	}
	if b, err := os.ReadFile(out); err != nil || string(b) != stdout {
		t.Errorf("-out file differs from stdout (%v)", err)
	}
}

// TestUsageErrors checks that a bad flag value or a stray argument is a
// usage error: status 2 and a message naming the flag.
func TestUsageErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"bad value", []string{"-runs", "0"}, "-runs 0: must be within [1, 100]"},
		{"unknown broker", []string{"-only", "ours,foo"}, `"foo" is not one of`},
		{"stray argument", []string{"extra"}, "unexpected arguments"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, status := runMain(t, tt.args...)
			if status != 2 || !strings.Contains(stderr, tt.want) {
				t.Errorf("status %d, stderr %q; want 2 and %q", status, stderr, tt.want)
			}
		})
	}
}
