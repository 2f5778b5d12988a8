package kafkatest

import (
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/factorywire/factorywire/internal/peers"
)

// TestRun starts a cluster as a program that is not a test does: Run finds
// nothing through testing.TB, Pid names the java process, LogDir holds the
// topic's partition, and Close reports a node that died while in use.
func TestRun(t *testing.T) {
	libs, java := peers.KafkaLibs(t)
	inst, err := FindInstall()
	if err != nil {
		t.Fatal(err)
	}
	if inst.Libs != libs || inst.Java != java || !strings.HasPrefix(inst.Version(), "4.") {
		t.Fatalf("FindInstall = %+v (version %q); peers.KafkaLibs found %s and %s", inst, inst.Version(), libs, java)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := Run(ctx, inst, t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pid := c.Pid(1)
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || !strings.Contains(string(cmdline), "kafka.Kafka") {
		t.Fatalf("pid %d: cmdline %q, %v", pid, cmdline, err)
	}
	cl := newClient(t, c.Brokers(), kgo.DefaultProduceTopic("run"), kgo.AllowAutoTopicCreation())
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	if _, err := os.Stat(c.LogDir(1) + "/run-0"); err != nil {
		t.Errorf("partition folder: %v", err)
	}

	syscall.Kill(pid, syscall.SIGKILL)
	for c.Running(1) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := c.Close(); err == nil || !strings.Contains(err.Error(), "node 1 exited while in use") {
		t.Errorf("Close after the node died: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
