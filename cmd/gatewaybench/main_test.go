package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/factorywire/factorywire/internal/gatewaybench"
	"github.com/factorywire/factorywire/internal/testchild"
)

// The tests run this test binary as the gatewaybench command: with argsEnv
// set, TestMain calls main with those arguments instead of running tests.
// The children the command starts (simulators, the broker, our gateway)
// re-execute this binary too, with gatewaybench.ChildEnv set and their own
// arguments: main dispatches them.
const argsEnv = "FACTORYWIRE_TEST_GATEWAYBENCH_MAIN_ARGS"

func TestMain(m *testing.M) {
	testchild.AsMain("gatewaybench", argsEnv, gatewaybench.ChildEnv, main)
	os.Exit(m.Run())
}

// runMain runs the command with args and returns its stdout, stderr and
// exit status.
func runMain(t *testing.T, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	return testchild.RunMain(t, argsEnv, args...)
}

// TestTinyRun runs the command's floor and gateway parts with the -quick
// settings and short windows: its flags reach the benchmark, its children
// (this binary, re-executed as simulator, broker and gateway) serve, and
// the report goes to stdout and to -out. Nothing is timed.
func TestTinyRun(t *testing.T) {
	out := filepath.Join(t.TempDir(), "report.md")
	stdout, stderr, status := runMain(t, "-quick", "-parts", "floor,gateway", "-floor-conns", "1",
		"-floor-duration", "500ms", "-floor-warmup", "100ms", "-warmup", "200ms", "-window", "2s", "-drain", "1s",
		"-dir", t.TempDir(), "-out", out)
	if status != 0 {
		t.Fatalf("exit status %d, want 0; stderr:\n%s\nstdout:\n%s", status, stderr, stdout)
	}
	for _, want := range []string{"## Polling flat out", "**poller/floor**", "## Whole system at 1 Hz", "gatewaybench -quick -parts floor,gateway"} {
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
		{"bad list", []string{"-devices", "1,x"}, `invalid value "1,x" for flag -devices`},
		{"unknown part", []string{"-parts", "floor,foo"}, `"foo" is not one of`},
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
