package sink

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/factorywire/factorywire/internal/testchild"
	"github.com/factorywire/factorywire/storage/mongots"
)

// Environment of a child sink process: the test binary re-executed runs a
// sink from the config file named by childConfigEnv instead of the tests.
const (
	childConfigEnv = "FACTORYWIRE_TEST_SINK_CONFIG"
	// childCrashEnv makes the child kill itself with SIGKILL during its
	// first write of documents: "after-write" once the write returned,
	// before the offsets are saved; "mid-write" after writing half of the
	// write's documents.
	childCrashEnv = "FACTORYWIRE_TEST_SINK_CRASH"
	// childReadyEnv names a file the child creates once it handles
	// SIGTERM.
	childReadyEnv = "FACTORYWIRE_TEST_SINK_READY"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(childConfigEnv); path != "" {
		os.Exit(runChild(path, os.Getenv(childCrashEnv)))
	}
	os.Exit(m.Run())
}

// runChild runs a sink from the config file at path until SIGTERM.
func runChild(path, crash string) int {
	// First, so that a SIGTERM sent while the sink starts stops it cleanly.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if ready := os.Getenv(childReadyEnv); ready != "" {
		if err := os.WriteFile(ready, nil, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "child sink:", err)
			return 1
		}
	}
	cfg, err := LoadConfig(path)
	if err == nil {
		var s *Sink
		logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
		if s, err = New(cfg, logger); err == nil {
			if crash != "" {
				s.pipe.store = &crashingStore{store: s.pipe.store, mode: crash}
			}
			err = s.Run(ctx)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "child sink:", err)
		return 1
	}
	return 0
}

// crashingStore kills the process with SIGKILL during its first Write.
type crashingStore struct {
	store
	mode string
}

func (c *crashingStore) Write(ctx context.Context, coll string, docs []mongots.Doc) (mongots.WriteResult, error) {
	if c.mode == "mid-write" {
		docs = docs[:len(docs)/2]
	}
	res, err := c.store.Write(ctx, coll, docs)
	if err == nil && res.Inserted > 0 {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	return res, err
}

// child is a sink child process.
type child struct {
	*exec.Cmd
	ready string // the file it creates once it handles SIGTERM
}

// terminate waits until the child handles SIGTERM, sends it, and waits
// for the child to exit; it fails the test unless the exit is clean.
func (c *child) terminate(t testing.TB) {
	t.Helper()
	waitFor(t, "the child to start", func() bool { _, err := os.Stat(c.ready); return err == nil })
	if err := c.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(); err != nil {
		t.Fatalf("child sink after SIGTERM: %v", err)
	}
}

// startChild starts a sink child process for cfg (written to dir), with
// crash as its childCrashEnv; the test kills it at the end if it still
// runs.
func startChild(t testing.TB, cfg Config, dir, crash string) *child {
	t.Helper()
	ready := filepath.Join(dir, fmt.Sprintf("ready-%d", time.Now().UnixNano()))
	cmd := testchild.Start(t, childConfigEnv, cfg, dir, "sink.yaml", childCrashEnv+"="+crash, childReadyEnv+"="+ready)
	return &child{Cmd: cmd, ready: ready}
}

// killedBySIGKILL reports whether a waited-for child died of SIGKILL.
func killedBySIGKILL(cmd *child) bool {
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}
