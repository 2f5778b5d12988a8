package gateway

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
)

// childConfigEnv names the config file a child gateway process runs: the
// test binary re-executed runs a gateway instead of the tests.
const childConfigEnv = "FACTORYWIRE_TEST_GATEWAY_CONFIG"

func TestMain(m *testing.M) {
	if path := os.Getenv(childConfigEnv); path != "" {
		os.Exit(runChild(path))
	}
	os.Exit(m.Run())
}

// runChild runs a gateway from the config file at path until SIGTERM.
func runChild(path string) int {
	cfg, err := LoadConfig(path)
	if err == nil {
		var g *Gateway
		logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
		if g, err = New(cfg, logger); err == nil {
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			err = g.Run(ctx)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "child gateway:", err)
		return 1
	}
	return 0
}

// startChild starts a gateway child process for cfg (written to dir) and
// returns it; the test kills it at the end if it still runs.
func startChild(t *testing.T, cfg Config, dir string) *exec.Cmd {
	t.Helper()
	return testchild.Start(t, childConfigEnv, cfg, dir, "gateway.yaml")
}

// TestGatewayKilledDuringOutage: with the broker down, the gateway process
// is killed with SIGKILL (twice, at different moments) and started again
// over the same data dir; when the broker returns, every sample polled by
// any of the processes arrives, each device's seq without a gap. A sample
// may arrive twice (the forwarder's checkpoint trails the broker's
// acknowledgements by one chunk), never out of order.
func TestGatewayKilledDuringOutage(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir, "127.0.0.1:0")
	addr := b.Addr().String()
	plant := newTestPlant(t, addr, 100*time.Millisecond, 2)
	plant.cfg.HTTPListen = ""
	createTopics(t, addr, plant.topics)
	work := t.TempDir()

	child := startChild(t, plant.cfg, work)
	plant.delivered(t, addr, 20)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	for i, wait := range []time.Duration{700 * time.Millisecond, 400 * time.Millisecond} {
		time.Sleep(wait)
		if err := child.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		child.Wait()
		t.Logf("kill %d: gateway killed during the outage", i+1)
		child = startChild(t, plant.cfg, work)
	}
	time.Sleep(500 * time.Millisecond)
	startBroker(t, dir, addr)
	time.Sleep(time.Second)
	if err := child.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := child.Wait(); err != nil {
		t.Fatalf("gateway after SIGTERM: %v", err)
	}
	// What the spool says each device's next seq is, after the last
	// process stopped cleanly, is what must have arrived.
	spool, err := OpenSpool(filepath.Join(plant.cfg.DataDir, "spool"), plant.cfg.Spool, nil)
	if err != nil {
		t.Fatal(err)
	}
	next, err := spool.NextSeqs()
	backlog := spool.backlog(false)
	spool.Close()
	if err != nil {
		t.Fatal(err)
	}
	if backlog != 0 {
		t.Fatalf("%d samples left in the spool after a clean stop", backlog)
	}
	last, total := map[string]uint64{}, 0
	for id := range plant.devices {
		if next[id] < 10 {
			t.Fatalf("device %s: next seq %d: the gateway hardly polled it", id, next[id])
		}
		last[id] = next[id] - 1
		total += int(next[id])
	}
	got := plant.delivered(t, addr, total)
	repeats := checkSeqs(t, got, plant.devices, last, true)
	t.Logf("%d samples delivered across an outage with 2 SIGKILLs; %d delivered twice", total, repeats)
}
