package benchkit

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"
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
	if !strings.HasPrefix(a, "`") || !strings.Contains(a, " files in internal/benchkit; newest modified ") {
		t.Errorf("fingerprint %q", a)
	}
	if b := SourceFingerprint([]string{"internal/procstat"}); b == a || b == "" {
		t.Errorf("two packages, fingerprints %q and %q", a, b)
	}
}

// TestChildRole: this test binary plays a role (TestMain below): StartRole
// gets its address, Ask its reply, Stop its clean exit; a role that exits
// before listening is an error naming it.
func TestChildRole(t *testing.T) {
	ctx := context.Background()
	c, err := StartRole(ctx, Role{Name: "echo", Env: childEnv + "=echo", StopTimeout: 10 * time.Second}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:1" || !c.Alive() || c.Pid() <= 0 {
		t.Errorf("addr %q, alive %v, pid %d", c.Addr, c.Alive(), c.Pid())
	}
	if r, err := c.Ask("ping", 10*time.Second); err != nil || r != "pong ping" {
		t.Errorf("ask: %q %v", r, err)
	}
	if err := StopAll([]*Child{nil, c}); err != nil {
		t.Errorf("stop: %v", err)
	}
	if c.Alive() || c.ExitErr() != nil {
		t.Errorf("after stop: alive %v, exit %v", c.Alive(), c.ExitErr())
	}
	if _, err := StartRole(ctx, Role{Name: "quitter", Env: childEnv + "=quit", StopTimeout: time.Second}, io.Discard); err == nil || !strings.Contains(err.Error(), "quitter exited before listening") {
		t.Errorf("a role that exits at once: %v", err)
	}
}

const childEnv = "BENCHKIT_TEST_CHILD"

// TestMain plays the roles of TestChildRole when childEnv is set.
func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		os.Exit(m.Run())
	case "echo":
		fmt.Println(AddrPrefix + "127.0.0.1:1")
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		lines := make(chan string)
		go func() {
			sc := bufio.NewScanner(os.Stdin)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		for {
			select {
			case <-sig:
				os.Exit(0)
			case l, ok := <-lines:
				if !ok {
					os.Exit(0)
				}
				fmt.Println(ReplyPrefix + "pong " + l)
			}
		}
	default:
		os.Exit(3)
	}
}
